using ILGPU.Runtime;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// The prefill attention of <see cref="FlashAttentionPtx"/> loaded on a CUDA accelerator, one module per head
/// dimension on first use, launched on the given stream. Pointers are device addresses, 16-byte aligned.
/// </summary>
public sealed unsafe class FlashAttention(Accelerator accelerator) : IDisposable
{
    private readonly Dictionary<(int HeadDim, int Warps, bool Bf16Cache), (PtxModule Module, PtxFunction Function)> _kernels = [];

    /// <summary>Warps a block (4 or 8; for the bench's comparison).</summary>
    public int Warps
    {
        get;
        set => field = value is 4 or 8 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "4 or 8");
    } = FlashAttentionPtx.DefaultWarps;

    /// <summary>Loads the kernel for <paramref name="headDim"/> (64 or 128) and the cache type.</summary>
    /// <exception cref="InvalidOperationException">The driver rejected the PTX (the message holds the JIT log).</exception>
    public PtxFunction Load(int headDim, bool bf16Cache = false)
    {
        if (!_kernels.TryGetValue((headDim, Warps, bf16Cache), out var kernel))
        {
            var module = new PtxModule(accelerator, FlashAttentionPtx.Module(headDim, Warps, bf16Cache),
                $"flash attention D={headDim}, {Warps} warps{(bf16Cache ? ", bf16 KV cache" : "")}");
            try
            {
                kernel = (module, module.Function(FlashAttentionPtx.Entry(headDim, Warps, bf16Cache), FlashAttentionPtx.SharedBytes(headDim)));
            }
            catch
            {
                module.Dispose();
                throw;
            }
            _kernels.Add((headDim, Warps, bf16Cache), kernel);
        }
        return kernel.Function;
    }

    /// <summary>out[rows, heads·D] = causal attention of q[rows, heads·D] (row r at position <paramref name="position0"/> + r)
    /// over the caches [positions, kvHeads·D] (f32, or bf16 with <paramref name="bf16Cache"/>); <paramref name="scale"/> is the logits' (1/√D).</summary>
    public void Launch(AcceleratorStream stream, nint q, nint keys, nint values, nint output, int rows, int position0, int heads, int kvHeads, int headDim, float scale,
        bool bf16Cache = false)
    {
        if (!FlashAttentionPtx.Supports(headDim) || rows < 1 || heads % kvHeads != 0)
            throw new ArgumentException($"flash attention: D={headDim} (64 or 128), {rows} rows, {heads}/{kvHeads} heads.");
        if ((q | keys | values | output) % 16 != 0)
            throw new ArgumentException("flash attention: q, the caches and the output must be 16-byte aligned.");
        var function = Load(headDim, bf16Cache);
        ulong qp = (ulong)q, kp = (ulong)keys, vp = (ulong)values, op = (ulong)output;
        int group = heads / kvHeads, kvColumns = kvHeads * headDim;
        float log2Scale = scale * 1.44269504f; // the kernel's softmax is base 2 (ex2)
        void** arguments = stackalloc void*[] { &qp, &kp, &vp, &op, &rows, &position0, &heads, &group, &kvColumns, &log2Scale };
        function.Launch(stream, FlashAttentionPtx.Blocks(rows, heads, Warps), 1, FlashAttentionPtx.Threads(Warps), arguments);
    }

    public void Dispose()
    {
        foreach (var (module, _) in _kernels.Values)
            module.Dispose();
        _kernels.Clear();
    }
}
