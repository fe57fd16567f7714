using ILGPU.Runtime;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// The tensor-core GEMM of <see cref="TensorCoreGemmPtx"/> for one <see cref="GemmTile"/>, loaded on a CUDA
/// accelerator: y[m, n] (f32) = bf16(x[m, k]) · w[n, k]ᵀ, two launches on the given stream (x rounded to a bf16
/// scratch buffer, then the GEMM). Pointers are device addresses (ILGPU buffers' NativePtr or tensor data).
/// </summary>
public sealed unsafe class TensorCoreGemm : IDisposable
{
    private readonly PtxModule _module;
    private readonly PtxFunction _convert, _gemm;
    private readonly PtxFunction? _gated, _int4, _int4Gated;

    /// <exception cref="InvalidOperationException">The driver rejected the PTX; the message holds the JIT log.</exception>
    public TensorCoreGemm(Accelerator accelerator, GemmTile tile)
    {
        ArgumentNullException.ThrowIfNull(tile);
        Tile = tile;
        _module = new PtxModule(accelerator, TensorCoreGemmPtx.Module(tile), "tensor-core GEMM " + tile.Name);
        try
        {
            _convert = _module.Function(TensorCoreGemmPtx.ConvertEntry, 0);
            _gemm = _module.Function(TensorCoreGemmPtx.GemmEntry(tile), tile.SharedBytes);
            _gated = TensorCoreGemmPtx.HasGated(tile) ? _module.Function(TensorCoreGemmPtx.GatedEntry(tile), tile.SharedBytes) : null;
            if (TensorCoreGemmPtx.HasInt4(tile))
            {
                _int4 = _module.Function(TensorCoreGemmPtx.Int4Entry(tile), tile.Int4SharedBytes);
                _int4Gated = _module.Function(TensorCoreGemmPtx.Int4GatedEntry(tile), tile.Int4SharedBytes);
            }
            BlocksPerMultiprocessor = _gemm.BlocksPerMultiprocessor(tile.Threads);
            if (BlocksPerMultiprocessor == 0)
                throw new InvalidOperationException($"tensor-core GEMM {tile.Name}: no block fits a multiprocessor ({_gemm.Registers} registers × {tile.Threads} threads, {tile.SharedBytes} B shared).");
        }
        catch
        {
            _module.Dispose();
            throw;
        }
    }

    public GemmTile Tile { get; }

    public int BlocksPerMultiprocessor { get; }

    /// <summary>Registers, spills and occupancy, for the bench.</summary>
    public string Describe()
    {
        // ptxas says when it had to serialize wgmma (its "Potential Performance Loss" advisories).
        string advisories = string.Join(" ", _module.InfoLog.Split('\n').Where(l => l.Contains("Performance", StringComparison.OrdinalIgnoreCase) || l.Contains("serializ", StringComparison.OrdinalIgnoreCase)).Select(l => l.Trim()));
        return $"{_gemm.Registers} registers, {_gemm.LocalBytes} B local, {BlocksPerMultiprocessor} blocks/SM, {Tile.SharedBytes / 1024} KB shared {advisories}".TrimEnd();
    }

    /// <summary>True for the shapes the kernels handle: k a multiple of 8 (16-byte rows), each operand under 2^31 elements.</summary>
    public static bool Supports(int m, int n, int k) =>
        m > 0 && n > 0 && k > 0 && k % 8 == 0 && (long)m * k <= int.MaxValue && (long)n * k <= int.MaxValue && (long)m * n <= int.MaxValue;

    /// <summary>Rounds x to bf16, then <see cref="Multiply"/>.</summary>
    /// <param name="x">f32 [m, k], 16-byte aligned.</param>
    /// <param name="xBf16">Scratch of m·k bf16, 16-byte aligned.</param>
    public void Launch(AcceleratorStream stream, nint x, nint xBf16, nint w, nint y, int m, int n, int k)
    {
        Check(xBf16, w, m, n, k);
        Convert(stream, x, xBf16, m, k);
        Multiply(stream, xBf16, w, y, m, n, k);
    }

    /// <summary>xBf16[m, k] = bf16(x) rounded to nearest even (k a multiple of 8, both 16-byte aligned): once for
    /// several <see cref="Multiply"/> calls that read the same x.</summary>
    public void Convert(AcceleratorStream stream, nint x, nint xBf16, int m, int k)
    {
        if ((x | xBf16) % 16 != 0 || k % 8 != 0 || (long)m * k > int.MaxValue)
            throw new ArgumentException($"bf16 conversion: x and its scratch 16-byte aligned, k ({k}) a multiple of 8, m·k under 2^31.");
        ulong source = (ulong)x, converted = (ulong)xBf16;
        int groups = m * k / 8;
        void** convert = stackalloc void*[] { &source, &converted, &groups };
        _convert.Launch(stream, (groups + TensorCoreGemmPtx.ConvertThreads - 1) / TensorCoreGemmPtx.ConvertThreads, 1, TensorCoreGemmPtx.ConvertThreads, convert);
    }

    /// <summary>y = xBf16 · wᵀ, the GEMM kernel alone.</summary>
    /// <param name="xBf16">bf16 [m, k], 16-byte aligned.</param>
    /// <param name="w">bf16 [n, k], 16-byte aligned.</param>
    /// <param name="y">f32 [m, n].</param>
    public void Multiply(AcceleratorStream stream, nint xBf16, nint w, nint y, int m, int n, int k)
    {
        Check(xBf16, w, m, n, k);
        var (gridX, gridY) = Tile.Grid(m, n);
        ulong converted = (ulong)xBf16, weight = (ulong)w, output = (ulong)y;
        void** gemm = stackalloc void*[] { &converted, &weight, &output, &m, &n, &k };
        _gemm.Launch(stream, gridX, gridY, Tile.Threads, gemm);
    }

    /// <summary>True when this tiling has the gated product (<see cref="Gated"/>).</summary>
    public bool HasGated => _gated is not null;

    /// <summary>y[m, n] = silu(xBf16 · gateᵀ) ⊙ (xBf16 · upᵀ), gate and up bf16 [n, k]: one launch, no up output.</summary>
    public void Gated(AcceleratorStream stream, nint xBf16, nint gate, nint up, nint y, int m, int n, int k)
    {
        if (_gated is null)
            throw new InvalidOperationException($"tensor-core GEMM {Tile.Name} has no gated product (wgmma tilings do).");
        Check(xBf16, gate, m, 2 * n, k);
        if (up % 16 != 0)
            throw new ArgumentException("tensor-core GEMM: the bf16 operands must be 16-byte aligned.", nameof(up));
        int gridX = (m + Tile.BlockM - 1) / Tile.BlockM, gridY = (n + Tile.BlockN / 2 - 1) / (Tile.BlockN / 2);
        ulong converted = (ulong)xBf16, gateWeight = (ulong)gate, upWeight = (ulong)up, output = (ulong)y;
        void** arguments = stackalloc void*[] { &converted, &gateWeight, &upWeight, &output, &m, &n, &k };
        _gated.Launch(stream, gridX, gridY, Tile.Threads, arguments);
    }

    /// <summary>True when this tiling reads int4wo-G weights itself (<see cref="Int4"/>, <see cref="Int4Gated"/>).</summary>
    public bool HasInt4 => _int4 is not null;

    /// <summary>y[m, n] = xBf16 · wᵀ with w int4wo-G as the device keeps it (nibbles [n, k/2], scale|zero words [n, k/G]),
    /// dequantized to bf16 on its way into shared memory: no expanded copy of w.</summary>
    public void Int4(AcceleratorStream stream, nint xBf16, nint nibbles, nint scaleZero, nint y, int m, int n, int k, int groupSize)
    {
        var function = _int4 ?? throw new InvalidOperationException($"tensor-core GEMM {Tile.Name} does not read int4 weights.");
        CheckInt4(xBf16, nibbles, scaleZero, m, n, k, groupSize);
        var (gridX, gridY) = Tile.Grid(m, n);
        ulong converted = (ulong)xBf16, q = (ulong)nibbles, s = (ulong)scaleZero, output = (ulong)y;
        int shift = System.Numerics.BitOperations.Log2((uint)groupSize), groups = k / groupSize;
        void** arguments = stackalloc void*[] { &converted, &q, &s, &output, &m, &n, &k, &shift, &groups };
        function.Launch(stream, gridX, gridY, Tile.Threads, arguments);
    }

    /// <summary>y[m, n] = silu(xBf16 · gateᵀ) ⊙ (xBf16 · upᵀ) with gate and up int4wo-G of one group size.</summary>
    public void Int4Gated(AcceleratorStream stream, nint xBf16, nint gate, nint gateScales, nint up, nint upScales, nint y, int m, int n, int k, int groupSize)
    {
        var function = _int4Gated ?? throw new InvalidOperationException($"tensor-core GEMM {Tile.Name} does not read int4 weights.");
        CheckInt4(xBf16, gate, gateScales, m, n, k, groupSize);
        CheckInt4(xBf16, up, upScales, m, n, k, groupSize);
        int gridX = (m + Tile.BlockM - 1) / Tile.BlockM, gridY = (n + Tile.BlockN / 2 - 1) / (Tile.BlockN / 2);
        ulong converted = (ulong)xBf16, gq = (ulong)gate, gs = (ulong)gateScales, uq = (ulong)up, us = (ulong)upScales, output = (ulong)y;
        int shift = System.Numerics.BitOperations.Log2((uint)groupSize), groups = k / groupSize;
        void** arguments = stackalloc void*[] { &converted, &gq, &gs, &uq, &us, &output, &m, &n, &k, &shift, &groups };
        function.Launch(stream, gridX, gridY, Tile.Threads, arguments);
    }

    private void CheckInt4(nint xBf16, nint nibbles, nint scaleZero, int m, int n, int k, int groupSize)
    {
        Check(xBf16, nibbles, m, n, k);
        if (groupSize is not (32 or 64 or 128 or 256) || k % groupSize != 0 || scaleZero % 4 != 0)
            throw new ArgumentException($"tensor-core int4 GEMM: group size {groupSize} (32..256) must divide k = {k}.");
    }

    private void Check(nint xBf16, nint w, int m, int n, int k)
    {
        if (!Supports(m, n, k))
            throw new ArgumentException($"tensor-core GEMM: m={m} n={n} k={k} needs k a multiple of 8 and operands under 2^31 elements.");
        if ((xBf16 | w) % 16 != 0)
            throw new ArgumentException("tensor-core GEMM: the bf16 operands must be 16-byte aligned.");
        if (Tile.Grid(m, n).Y > 65535)
            throw new ArgumentException($"tensor-core GEMM {Tile.Name}: n={n} needs {Tile.Grid(m, n).Y} column blocks, past the grid's 65535.");
    }

    public void Dispose() => _module.Dispose();
}
