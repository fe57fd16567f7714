using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Cuda.Kernels;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// The int4wo-G decode GEMV on tensor cores (<see cref="Int4MmaGemvPtx"/>), one module a group size, loaded on first
/// use on a CUDA accelerator and launched on the backend's stream (so it joins the decode graph). Takes what the
/// ILGPU GEMV takes (<see cref="GemvSources{TScale}"/>: one weight, q/k/v, or gate and up) for K a multiple of 128,
/// with the norm fold on either side (<see cref="ResidualNorm"/>, <see cref="InputScale"/>), which the ILGPU int4 GEMV
/// has not.
/// </summary>
public sealed unsafe class Int4MmaGemv(Accelerator accelerator) : IDisposable
{
    /// <summary>Warps an SM the split aims to fill.</summary>
    private const int WarpsPerMultiprocessor = 8;

    /// <summary>Stages of the kernel's load pipeline unless a launch asks for others.</summary>
    public const int DefaultStages = 2;

    private readonly Dictionary<(int Group, int Stages), (PtxModule Module, PtxFunction Function)> _loaded = [];

    /// <summary>True for the shapes the kernel takes: K a multiple of 128.</summary>
    public static bool Supports(int k) => k > 0 && k % 128 == 0;

    /// <summary>Dynamic shared memory a block may opt into: the SM's, less the 1 KB the driver reserves a block
    /// (227 KB on an H100, 163 KB on an A100).</summary>
    private readonly int _maxSharedBytes = accelerator is CudaAccelerator cuda ? cuda.MaxSharedMemoryPerMultiprocessor - 1024 : 48 * 1024;

    /// <summary>Registers, spills and occupancy of the kernel for <paramref name="groupSize"/>, for the bench.</summary>
    public string Describe(int groupSize, int stages)
    {
        var f = Function(groupSize, stages);
        int split = MaxSplit(groupSize, stages);
        int warps = f.BlocksPerMultiprocessor(32 * split, Int4MmaGemvPtx.SharedBytes(groupSize, stages, split)) * split;
        return $"{f.Registers} regs, {f.LocalBytes} B local, {warps} warps/SM at {split} warps a block";
    }

    /// <summary>Warps a row set takes: enough to fill the GPU, at most one a 128-k block, and no more than the shared
    /// memory of a block holds.</summary>
    private int Split(int rowSets, int k, int requested, int groupSize, int stages)
    {
        int blocks = k / 128, split = requested, most = MaxSplit(groupSize, stages);
        if (split == 0)
        {
            int target = WarpsPerMultiprocessor * accelerator.NumMultiprocessors;
            split = 1;
            while (split < most && (long)rowSets * split < target)
                split *= 2;
        }
        return Math.Clamp(Math.Min(split, blocks), 1, most);
    }

    private int MaxSplit(int groupSize, int stages)
    {
        int split = Int4MmaGemvPtx.MaxSplit;
        while (split > 1 && Int4MmaGemvPtx.SharedBytes(groupSize, stages, split) > _maxSharedBytes)
            split--;
        return split;
    }

    /// <param name="weights">Data, scale/zero words and y of each weight (one, three, or gate and up).</param>
    /// <param name="x">f32 [K], 16-byte aligned.</param>
    /// <param name="split">Warps a row set (0: enough to fill the GPU).</param>
    /// <param name="stages">Blocks of K whose loads are in flight, the one computed included (2..4).</param>
    public void Launch(AcceleratorStream stream, GemvSources<uint> weights, ArrayView<float> x, int k, int groupSize, int split, int stages = DefaultStages)
    {
        if (!Supports(k))
            throw new ArgumentException($"The int4 tensor-core GEMV needs K a multiple of 128, not {k}.", nameof(k));
        int sets = weights.Gated != 0 ? (weights.N0 + 15) / 16 : Sets(weights.N0) + Sets(weights.N1) + Sets(weights.N2);
        int s = Split(sets, k, split, groupSize, stages);
        ulong w0 = Pointer(weights.Data0), w1 = Pointer(weights.Data1), w2 = Pointer(weights.Data2);
        ulong s0 = Pointer(weights.Scales0), s1 = Pointer(weights.Scales1), s2 = Pointer(weights.Scales2);
        ulong y0 = Pointer(weights.Y0), y1 = Pointer(weights.Y1), y2 = Pointer(weights.Y2), xs = Pointer(x);
        int n0 = weights.N0, n1 = weights.N1, n2 = weights.N2, gated = weights.Gated;
        var (norm, input) = (weights.Norm, weights.Input);
        int normOn = norm.On, inputOn = input.On;
        ulong residual = normOn != 0 ? Pointer(norm.Residual) : 0, gain = normOn != 0 ? Pointer(norm.Weight) : 0, normed = normOn != 0 ? Pointer(norm.Normed) : 0;
        ulong normSums = normOn != 0 ? Pointer(norm.Sums) : 0, normNext = normOn != 0 ? Pointer(norm.Next) : 0, inputSums = inputOn != 0 ? Pointer(input.Sums) : 0;
        float width = input.InverseWidth, eps = input.Eps;
        void** arguments = stackalloc void*[]
        {
            &w0, &w1, &w2, &s0, &s1, &s2, &y0, &y1, &y2, &xs, &n0, &n1, &n2, &gated, &k, &s,
            &residual, &gain, &normed, &normSums, &normNext, &normOn, &inputSums, &width, &eps, &inputOn,
        };
        Function(groupSize, stages).Launch(stream, sets, 1, 32 * s, arguments, Int4MmaGemvPtx.SharedBytes(groupSize, stages, s));
    }

    private static int Sets(int n) => (n + 31) / 32;

    private static ulong Pointer<T>(ArrayView<T> view)
        where T : unmanaged => (ulong)view.LoadEffectiveAddressAsPtr();

    /// <summary>Loads the module for <paramref name="groupSize"/> (the driver JIT-compiles it) if it is not yet.</summary>
    /// <exception cref="InvalidOperationException">The driver rejected the PTX; the message holds the JIT log.</exception>
    public void Load(int groupSize, int stages) => Function(groupSize, stages);

    private PtxFunction Function(int groupSize, int stages)
    {
        if (!_loaded.TryGetValue((groupSize, stages), out var loaded))
        {
            var module = new PtxModule(accelerator, Int4MmaGemvPtx.Module(groupSize, stages), $"int4wo-{groupSize} tensor-core GEMV ({stages} stages)");
            try
            {
                var shared = Int4MmaGemvPtx.SharedBytes(groupSize, stages, MaxSplit(groupSize, stages));
                loaded = (module, module.Function(Int4MmaGemvPtx.Entry(groupSize, stages), shared));
            }
            catch
            {
                module.Dispose();
                throw;
            }
            _loaded.Add((groupSize, stages), loaded);
        }
        return loaded.Function;
    }

    public void Dispose()
    {
        foreach (var (module, _) in _loaded.Values)
            module.Dispose();
        _loaded.Clear();
    }
}
