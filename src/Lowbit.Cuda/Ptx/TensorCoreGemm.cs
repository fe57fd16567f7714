using ILGPU.Runtime;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// The tensor-core GEMM of <see cref="TensorCoreGemmPtx"/> for one <see cref="GemmTile"/>, loaded on a CUDA
/// accelerator: y[m, n] (f32) = bf16(x[m, k]) · w[n, k]ᵀ, two launches on the given stream (x rounded to a bf16
/// scratch buffer, then the GEMM); the gated product; and int8dq's int8 product (<see cref="Int8"/>). Pointers are
/// device addresses (ILGPU buffers' NativePtr or tensor data).
/// </summary>
public sealed unsafe class TensorCoreGemm : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly PtxModule _module;
    private readonly PtxFunction _convert, _gemm;
    private PtxModule? _int8Module; // a wgmma tiling's int8 GEMM lives in a module of its own (PTX ISA 8.4), loaded on first use
    private PtxFunction? _int8, _gatedInt8;
    private readonly PtxFunction? _gated;

    /// <exception cref="InvalidOperationException">The driver rejected the PTX; the message holds the JIT log.</exception>
    public TensorCoreGemm(Accelerator accelerator, GemmTile tile)
    {
        ArgumentNullException.ThrowIfNull(tile);
        Tile = tile;
        _accelerator = accelerator;
        _module = new PtxModule(accelerator, TensorCoreGemmPtx.Module(tile), "tensor-core GEMM " + tile.Name);
        try
        {
            _convert = _module.Function(TensorCoreGemmPtx.ConvertEntry, 0);
            _gemm = _module.Function(TensorCoreGemmPtx.GemmEntry(tile), tile.SharedBytes);
            _gated = TensorCoreGemmPtx.HasGated(tile) ? _module.Function(TensorCoreGemmPtx.GatedEntry(tile), tile.SharedBytes) : null;
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

    /// <summary>True for the shapes <see cref="Int8"/> takes: k a multiple of 16 (16-byte rows of int8), each operand under 2^31 bytes.</summary>
    public static bool SupportsInt8(int m, int n, int k) => k % 16 == 0 && Supports(m, n, k);

    /// <summary>y[m, n] = f32(Σ_k c[m, k]·q[n, k]) · (xScales[m]·wScales[n]), one launch (<see cref="TensorCoreGemmPtx.Int8Entry"/>).</summary>
    /// <param name="codes">int8 [m, k], 16-byte aligned.</param>
    /// <param name="w">q + 128 as bytes [n, k] (rows k bytes apart), 16-byte aligned.</param>
    /// <param name="xSums">s32 [m]: Σ_k c[m, k].</param>
    public void Int8(AcceleratorStream stream, nint codes, nint w, nint y, int m, int n, int k, nint xScales, nint xSums, nint wScales)
    {
        if (!SupportsInt8(m, n, k))
            throw new ArgumentException($"int8 tensor-core GEMM: m={m} n={n} k={k} needs k a multiple of 16 and operands under 2^31 elements.");
        if ((codes | w) % 16 != 0)
            throw new ArgumentException("int8 tensor-core GEMM: the int8 operands must be 16-byte aligned.");
        var (gridX, gridY) = Tile.Grid(m, n);
        if (gridY > 65535)
            throw new ArgumentException($"tensor-core GEMM {Tile.Name}: n={n} needs {gridY} column blocks, past the grid's 65535.");
        var function = Int8Function();
        ulong x = (ulong)codes, weight = (ulong)w, output = (ulong)y, scales = (ulong)xScales, sums = (ulong)xSums, columnScales = (ulong)wScales;
        void** arguments = stackalloc void*[] { &x, &weight, &output, &m, &n, &k, &scales, &sums, &columnScales };
        function.Launch(stream, gridX, gridY, Tile.Threads, arguments);
    }

    /// <summary>y[m, n] = silu(g) ⊙ u, g and u the <see cref="Int8"/> products of gate and up (q + 128 bytes [n, k] each),
    /// one launch (a wgmma tiling's, <see cref="HasGated"/>).</summary>
    public void GatedInt8(AcceleratorStream stream, nint codes, nint gate, nint up, nint y, int m, int n, int k, nint xScales, nint xSums, nint gateScales, nint upScales)
    {
        if (_gated is null)
            throw new InvalidOperationException($"tensor-core GEMM {Tile.Name} has no gated product (wgmma tilings do).");
        if (!SupportsInt8(m, 2 * n, k) || (codes | gate | up) % 16 != 0)
            throw new ArgumentException($"gated int8 tensor-core GEMM: m={m} n={n} k={k} needs k a multiple of 16 and 16-byte aligned int8 operands.");
        Int8Function();
        int gridX = (m + Tile.BlockM - 1) / Tile.BlockM, gridY = (n + Tile.BlockN / 2 - 1) / (Tile.BlockN / 2);
        ulong x = (ulong)codes, g = (ulong)gate, u = (ulong)up, output = (ulong)y, scales = (ulong)xScales, sums = (ulong)xSums, gs = (ulong)gateScales, us = (ulong)upScales;
        void** arguments = stackalloc void*[] { &x, &g, &u, &output, &m, &n, &k, &scales, &sums, &gs, &us };
        _gatedInt8!.Launch(stream, gridX, gridY, Tile.Threads, arguments);
    }

    /// <summary>Loads the int8 GEMM (and the gated one where the tiling has it) if it is not yet.</summary>
    /// <exception cref="InvalidOperationException">The driver rejected the PTX (a wgmma tiling's needs PTX ISA 8.4); the message holds the JIT log.</exception>
    public void LoadInt8() => Int8Function();

    private PtxFunction Int8Function()
    {
        if (_int8 is null)
        {
            var module = Tile.Wgmma ? _int8Module ??= new PtxModule(_accelerator, TensorCoreGemmPtx.Int8Module(Tile), "int8 tensor-core GEMM " + Tile.Name) : _module;
            _gatedInt8 = TensorCoreGemmPtx.HasGated(Tile) ? module.Function(TensorCoreGemmPtx.GatedInt8Entry(Tile), Tile.SharedBytes) : null;
            _int8 = module.Function(TensorCoreGemmPtx.Int8Entry(Tile), Tile.SharedBytes);
        }
        return _int8;
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

    public void Dispose()
    {
        _module.Dispose();
        _int8Module?.Dispose();
    }
}
