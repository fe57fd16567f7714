using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using Lowbit.Cuda.Kernels;
using Lowbit.Cuda.Ptx;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>
/// The quantized linear layers: each host weight is converted once (at <see cref="PrepareWeights"/> or first use)
/// into its <see cref="CudaWeight"/> layout and kept, keyed by the host weight; <see cref="Linear"/> then runs the
/// format's GEMV (m = 1) or tiled GEMM (m &gt; 1). Kernels are loaded on first use, so a model compiles only its
/// formats' kernels. <see cref="RandomWeight"/> builds a device weight with no host copy, for benchmarks.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    /// <summary>Host bytes converted and copied at a time when uploading a weight.</summary>
    private const int StagingBytes = 64 << 20;

    private readonly Dictionary<IWeight, CudaWeight> _packed = new(ReferenceEqualityComparer.Instance);
    private RowScaledGemv<Int8PerRowValues>? _int8Gemv;
    private RowScaledGemv<Float8PerRowValues>? _float8Gemv;
    private RowScaledGemv<Int8DynamicCodes>? _int8DynamicGemv;
    private Int4GroupedGemv? _int4Gemv;
    private Int4MmaGemv? _int4MmaGemv;
    private QuantizedGemm<RowScaledTile<Int8PerRowValues>>? _int8Gemm;
    private QuantizedGemm<RowScaledTile<Float8PerRowValues>>? _float8Gemm;
    private QuantizedGemm<Int4GroupedTile>? _int4Gemm;
    private ActivationQuantizer? _activationQuantizer;
    private RandomBits? _randomBits;
    private MemoryBuffer1D<float, Stride1D.Dense>? _codes, _tokenScales;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _int8Codes; // int8dq's prefill codes as bytes, for the int8 tensor-core GEMM
    private MemoryBuffer1D<int, Stride1D.Dense>? _codeSums;

    private delegate void RowWriter(int row, Span<byte> destination);

    /// <summary>True when <see cref="Linear"/> runs this weight: dense, int8wo, int8dq, fp8wo, int4wo-G, or a
    /// <see cref="CudaWeight"/>.</summary>
    public static bool HasLinearKernel(IWeight weight) =>
        weight is DenseWeight or CudaWeight or Int8PerRowWeight or Int8DynamicWeight or Float8PerRowWeight or Int4GroupedWeight;

    /// <summary>
    /// A device weight [n, k] of <paramref name="format"/> ("bf16", "f16", "f32", "int8wo", "int8dq", "fp8wo",
    /// "int4wo-32/64/128/256") whose packed data is random bits in each field's valid range, made on the GPU
    /// (no host copy): codes of every value (E4M3 exponents kept below the NaN codes), dense values and scales
    /// of magnitude 2^−7 and 2^−10 with random mantissas, zero points ±2^−10. Deterministic for a seed. The
    /// caller owns (disposes) it; <see cref="Linear"/> runs it like an uploaded weight.
    /// </summary>
    public CudaWeight RandomWeight(string format, int n, int k, int seed)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        var (kind, dtype, group) = ParseFormat(format, k);
        var weight = new CudaWeight(_accelerator, kind, dtype, n, k, group, format);
        // (keep, set) masks of a data word and of a scale word: see Kernels/RandomBits.
        var (data, scale) = kind switch
        {
            CudaFormat.Dense => (DenseRandomMasks(dtype), (0u, 0u)),
            CudaFormat.Float8PerRow => ((0xBFBFBFBFu, 0u), (0x007FFFFFu, 0x3A800000u)),
            CudaFormat.Int4Grouped => ((~0u, 0u), (0x807F007Fu, 0x3A803A80u)),
            _ => ((~0u, 0u), (0x007FFFFFu, 0x3A800000u)),
        };
        var bits = _randomBits ??= new RandomBits(_accelerator);
        bits.Launch(_stream, ((ArrayView<Uint4>)weight.Data.View).Cast<uint>(), (uint)seed, data.Item1, data.Item2);
        bits.Launch(_stream, weight.Scales.View, (uint)seed ^ 0x9E3779B9u, scale.Item1, scale.Item2);
        return weight;
    }

    /// <summary>(keep, set) masks of a dense data word: two bf16/f16 values or one f32 of magnitude ~2^−7
    /// with random sign and mantissa.</summary>
    private static (uint Keep, uint Set) DenseRandomMasks(DType dtype) => dtype switch
    {
        DType.BF16 => (0x807F807Fu, 0x3C003C00u),
        DType.F16 => (0x83FF83FFu, 0x20002000u),
        _ => (0x807FFFFFu, 0x3C000000u),
    };

    /// <summary>Readies a linear weight at load: dense tensors are uploaded as they are, quantized ones packed.</summary>
    private void UploadLinear(IWeight weight)
    {
        if (weight is DenseWeight dense)
            Words(dense.Tensor);
        else if (weight is not CudaWeight)
            Packed(weight);
    }

    /// <summary>Every weight but a host <see cref="DenseWeight"/>: quantized formats and <see cref="CudaWeight"/>s.</summary>
    /// <param name="norm">For the GEMVs: add into a residual and norm it instead of writing the destination.</param>
    /// <param name="input">For the GEMVs but int8dq's: x's 1/rms still to apply (<see cref="InputFor"/>).</param>
    private void PackedLinear(TensorView x, IWeight weight, TensorView destination, ResidualNorm norm = default, InputScale input = default)
    {
        var w = weight as CudaWeight ?? Packed(weight);
        int m = x.Rows, n = w.OutFeatures, k = w.InFeatures;
        if (x.Columns != k || destination.Rows != m || destination.Columns != n)
            throw new ArgumentException($"{w.FormatName} linear [{n}, {k}]: x is {x}, destination {destination}.", nameof(x));
        var xs = F32(x);
        var y = F32(destination);
        long xOffset = x.Data - AllocationOf(x.Data).NativePtr;
        // The GEMVs read x in 16-byte vectors; an unaligned single row takes the GEMM.
        bool gemv = m == 1 && xOffset % 16 == 0;
        if ((norm.On != 0 || input.On != 0) && !gemv)
            throw new ArgumentException("Only the GEMVs add into a residual or scale their input.", nameof(norm));
        ArrayView<Uint4> data = w.Data.View;
        ArrayView<uint> scales = w.Scales.View;
        var rowScaled = new RowScaledTile<Int8PerRowValues> { Data = data, Scales = scales.Cast<float>() };
        switch (w.Format)
        {
            case CudaFormat.Dense:
                int code = DenseElements.Code(w.DenseType);
                _linear.Launch(_stream, xs, data.Cast<uint>(), y, m, n, k, code, DenseLinear.VectorLoadsFit(k, code, xOffset), norm, input);
                break;
            case CudaFormat.Int8PerRow when gemv:
                (_int8Gemv ??= new(_accelerator)).Launch(_stream, GemvSources<float>.Single(data, scales.Cast<float>(), y, n) with { Split = GemvSplit, Norm = norm, Input = input }, xs, xs, k);
                break;
            case CudaFormat.Int8PerRow:
                if (!TensorCorePackedLinear(x.Data, m, w, destination))
                    (_int8Gemm ??= new(_accelerator)).Launch(_stream, rowScaled, xs, y, m, n, k);
                break;
            case CudaFormat.Float8PerRow when gemv:
                (_float8Gemv ??= new(_accelerator)).Launch(_stream, GemvSources<float>.Single(data, scales.Cast<float>(), y, n) with { Split = GemvSplit, Norm = norm, Input = input }, xs, xs, k);
                break;
            case CudaFormat.Float8PerRow:
                if (!TensorCorePackedLinear(x.Data, m, w, destination))
                    (_float8Gemm ??= new(_accelerator)).Launch(_stream, new RowScaledTile<Float8PerRowValues> { Data = data, Scales = scales.Cast<float>() }, xs, y, m, n, k);
                break;
            case CudaFormat.Int4Grouped when gemv:
                Int4Gemv(GemvSources<uint>.Single(data, scales, y, n) with { Split = GemvSplit, Norm = norm, Input = input }, xs, k, w.GroupSize);
                break;
            case CudaFormat.Int4Grouped:
                if (!TensorCorePackedLinear(x.Data, m, w, destination))
                    (_int4Gemm ??= new(_accelerator)).Launch(_stream, new Int4GroupedTile { Data = data, ScaleZero = scales, GroupSize = w.GroupSize }, xs, y, m, n, k);
                break;
            case CudaFormat.Int8Dynamic when m > 1 && Int8DynamicOnTensorCores(xs, m, w, y):
                break;
            case CudaFormat.Int8Dynamic:
                // Codes for the integer GEMV; for prefill without int8 tensor cores c·s, as the CPU, through int8wo's GEMM.
                // The quantizer takes no input scale (InputFor settles x first).
                var (codes, tokenScales) = ActivationScratch(m, k);
                (_activationQuantizer ??= new(_accelerator)).Launch(_stream, xs, codes, tokenScales, m, k, dequantized: m > 1);
                if (m == 1)
                    (_int8DynamicGemv ??= new(_accelerator)).Launch(_stream, GemvSources<float>.Single(data, scales.Cast<float>(), y, n) with { Split = GemvSplit, Norm = norm }, codes, tokenScales, k);
                else if (!TensorCorePackedLinear(codes.LoadEffectiveAddressAsPtr(), m, w, destination))
                    (_int8Gemm ??= new(_accelerator)).Launch(_stream, rowScaled, codes, y, m, n, k);
                break;
        }
    }

    /// <summary>
    /// q/k/v (two or three weights into their destinations) or, <paramref name="gated"/>, gate and up (into the one
    /// destination, silu(gate)·up) as one GEMV launch when the weights are int8wo, int8dq, fp8wo or int4wo-G of one
    /// layout and x is one aligned row (int8dq: x's codes made once, then one GEMV); false otherwise (the caller then
    /// runs them one by one).
    /// </summary>
    private bool FusedPackedGemv(TensorView x, ReadOnlySpan<IWeight> weights, ReadOnlySpan<TensorView> destinations, bool gated, InputScale input)
    {
        int k = x.Columns;
        if (x.Rows != 1 || (x.Data - AllocationOf(x.Data).NativePtr) % 16 != 0 || weights.Length is < 2 or > 3 || (gated && weights.Length != 2))
            return false;
        CudaWeight? a = Fusable(weights[0], k), b = Fusable(weights[1], k), c = weights.Length == 3 ? Fusable(weights[2], k) : b;
        if (a is null || b is null || c is null || !SameLayout(a, b) || !SameLayout(a, c) || (gated && a.OutFeatures != b.OutFeatures))
            return false;
        for (int i = 0; i < destinations.Length; i++)
        {
            var w = i == 0 ? a : i == 1 ? b : c;
            if (destinations[i].Rows != 1 || destinations[i].Columns != w.OutFeatures)
                throw new ArgumentException($"{w.FormatName} linear [{w.OutFeatures}, {k}]: destination {i} is {destinations[i]}.", nameof(destinations));
        }
        ArrayView<float> xs = F32(x), y0 = F32(destinations[0]), y1 = gated ? y0 : F32(destinations[1]), y2 = weights.Length == 3 ? F32(destinations[2]) : y1;
        int n1 = gated ? 0 : b.OutFeatures, n2 = weights.Length == 3 ? c.OutFeatures : 0;
        switch (a.Format)
        {
            case CudaFormat.Int4Grouped:
                Int4Gemv(Sources<uint>(a, b, c, y0, y1, y2, n1, n2, gated) with { Split = GemvSplit, Input = input }, xs, k, a.GroupSize);
                break;
            case CudaFormat.Int8PerRow:
                (_int8Gemv ??= new(_accelerator)).Launch(_stream, Sources<float>(a, b, c, y0, y1, y2, n1, n2, gated) with { Split = GemvSplit, Input = input }, xs, xs, k);
                break;
            case CudaFormat.Int8Dynamic:
                // x's codes once for all the weights.
                var (codes, tokenScales) = ActivationScratch(1, k);
                (_activationQuantizer ??= new(_accelerator)).Launch(_stream, xs, codes, tokenScales, 1, k, dequantized: false);
                (_int8DynamicGemv ??= new(_accelerator)).Launch(_stream, Sources<float>(a, b, c, y0, y1, y2, n1, n2, gated) with { Split = GemvSplit }, codes, tokenScales, k);
                break;
            default:
                (_float8Gemv ??= new(_accelerator)).Launch(_stream, Sources<float>(a, b, c, y0, y1, y2, n1, n2, gated) with { Split = GemvSplit, Input = input }, xs, xs, k);
                break;
        }
        return true;
    }

    /// <summary>An int4wo-G GEMV: on tensor cores (<see cref="Int4MmaGemv"/>) on a CUDA GPU for K a multiple of 128 unless
    /// <see cref="Int4TensorCoreGemv"/> is off or the driver rejected its PTX (kept in <see cref="Int4TensorCoreError"/>);
    /// the ILGPU kernel otherwise.</summary>
    private void Int4Gemv(GemvSources<uint> sources, ArrayView<float> x, int k, int groupSize)
    {
        if (Int4GemvOnTensorCores(k, groupSize))
            _int4MmaGemv!.Launch(_stream, sources, x, k, groupSize, Int4TensorCoreSplit, Int4TensorCoreStages);
        else
            (_int4Gemv ??= new(_accelerator)).Launch(_stream, sources, x, k, groupSize);
    }

    /// <summary>True when an int4wo-G GEMV of this K runs on tensor cores (which also fold the norms: see
    /// <see cref="GemvAddsIntoResidual"/>, <see cref="TakesInputScale"/>).</summary>
    private bool Int4GemvOnTensorCores(int k, int groupSize) =>
        Int4TensorCoreGemv && HasTensorCores && Int4TensorCoreError is null && Int4MmaGemv.Supports(k) && ReadyInt4Mma(groupSize) is not null;

    /// <summary>The tensor-core GEMV with its module for <paramref name="groupSize"/> loaded, or null (and
    /// <see cref="Int4TensorCoreError"/> set) when the driver rejects the PTX.</summary>
    private Int4MmaGemv? ReadyInt4Mma(int groupSize)
    {
        try
        {
            (_int4MmaGemv ??= new(_accelerator)).Load(groupSize, Int4TensorCoreStages);
            return _int4MmaGemv;
        }
        catch (InvalidOperationException e)
        {
            Int4TensorCoreError = e.Message;
            return null;
        }
    }

    /// <summary>Whether int4wo GEMVs run on tensor cores where they can (on by default; the bench and the checks turn it
    /// off to time and check the ILGPU kernel).</summary>
    public bool Int4TensorCoreGemv { get; set; } = true;

    /// <summary>Warps a row set of the int4 tensor-core GEMV (0: its own choice; 1..16 for the bench's sweep).</summary>
    public int Int4TensorCoreSplit { get; set; }

    /// <summary>Blocks of K whose loads the int4 tensor-core GEMV keeps in flight (2..4; for the bench's sweep).</summary>
    public int Int4TensorCoreStages { get; set; } = Int4MmaGemv.DefaultStages;

    /// <summary>Why int4wo GEMVs went back to the ILGPU kernel for good (the driver's JIT error), or null.</summary>
    public string? Int4TensorCoreError { get; private set; }

    /// <summary>The device weight of a quantized layer the fused GEMVs take (int8wo, int8dq, fp8wo, int4wo-G with this K), or null.</summary>
    private CudaWeight? Fusable(IWeight weight, int k) =>
        PackedWeight(weight) is { InFeatures: var inFeatures, Format: CudaFormat.Int8PerRow or CudaFormat.Int8Dynamic or CudaFormat.Float8PerRow or CudaFormat.Int4Grouped } w
            && inFeatures == k ? w : null;

    /// <summary>The device form of a weight the backend packs (a quantized layer or a <see cref="CudaWeight"/>),
    /// uploaded on first use; null for a host <see cref="DenseWeight"/> or a format without a kernel.</summary>
    private CudaWeight? PackedWeight(IWeight weight) =>
        weight is DenseWeight || !HasLinearKernel(weight) ? null : weight as CudaWeight ?? Packed(weight);

    private static bool SameLayout(CudaWeight a, CudaWeight b) => a.Format == b.Format && a.GroupSize == b.GroupSize;

    private static GemvSources<T> Sources<T>(CudaWeight a, CudaWeight b, CudaWeight c, ArrayView<float> y0, ArrayView<float> y1, ArrayView<float> y2,
        int n1, int n2, bool gated)
        where T : unmanaged => new()
        {
            Data0 = a.Data.View,
            Data1 = b.Data.View,
            Data2 = c.Data.View,
            Scales0 = ((ArrayView<uint>)a.Scales.View).Cast<T>(),
            Scales1 = ((ArrayView<uint>)b.Scales.View).Cast<T>(),
            Scales2 = ((ArrayView<uint>)c.Scales.View).Cast<T>(),
            Y0 = y0,
            Y1 = y1,
            Y2 = y2,
            N0 = a.OutFeatures,
            N1 = n1,
            N2 = n2,
            Gated = gated ? 1 : 0,
        };

    /// <summary>The GEMV kernel <see cref="Linear"/> runs for a format once it has run (null before, and for dense).</summary>
    private Kernel? GemvKernel(CudaFormat format) => format switch
    {
        CudaFormat.Int8PerRow => _int8Gemv?.Compiled,
        CudaFormat.Int8Dynamic => _int8DynamicGemv?.Compiled,
        CudaFormat.Float8PerRow => _float8Gemv?.Compiled,
        CudaFormat.Int4Grouped => _int4Gemv?.Compiled,
        _ => null,
    };

    private CudaWeight Packed(IWeight weight)
    {
        if (!_packed.TryGetValue(weight, out var packed))
        {
            packed = Pack(weight);
            _packed.Add(weight, packed);
        }
        return packed;
    }

    private CudaWeight Pack(IWeight weight) => weight switch
    {
        Int8PerRowWeight w => PackInt8(w, CudaFormat.Int8PerRow, w.FormatName),
        Int8DynamicWeight d => PackInt8(d.Weight, CudaFormat.Int8Dynamic, d.FormatName),
        Float8PerRowWeight f => PackFloat8(f),
        Int4GroupedWeight g => PackInt4(g),
        _ => throw new NotSupportedException($"The CUDA backend has no linear kernel for {weight.FormatName} ({weight.GetType().Name}); it runs dense, int8wo, int8dq, fp8wo and int4wo-G."),
    };

    /// <summary>int8wo/int8dq: q + 128 (offset binary), rows padded with 128 (q = 0) to 16 bytes.</summary>
    private CudaWeight PackInt8(Int8PerRowWeight host, CudaFormat format, string name)
    {
        int n = host.OutFeatures, k = host.InFeatures;
        var weight = new CudaWeight(_accelerator, format, DType.F32, n, k, k, name);
        WriteRows(Bytes(weight.Data), n, weight.RowBytes, (row, destination) =>
        {
            ReadOnlySpan<byte> q = host.Data.Row<byte>(row);
            for (int i = 0; i < q.Length; i++)
                destination[i] = (byte)(q[i] ^ 0x80);
            destination[k..].Fill(0x80);
        });
        WriteRowScales(weight, host.Scale);
        return weight;
    }

    /// <summary>fp8wo: the E4M3 codes as they are, rows padded with 0 (+0.0) to 16 bytes.</summary>
    private CudaWeight PackFloat8(Float8PerRowWeight host)
    {
        int n = host.OutFeatures, k = host.InFeatures;
        var weight = new CudaWeight(_accelerator, CudaFormat.Float8PerRow, DType.F32, n, k, k, host.FormatName);
        WriteRows(Bytes(weight.Data), n, weight.RowBytes, (row, destination) =>
        {
            host.Codes.Row<byte>(row).CopyTo(destination);
            destination[k..].Clear();
        });
        WriteRowScales(weight, row => host.Scales.Row<float>(row)[0]);
        return weight;
    }

    /// <summary>int4wo-G: the host's chunks (byte j holds elements j and 16 + j) reordered into a nibble stream
    /// (byte i holds elements 2i and 2i + 1); scale and zero paired in one word.</summary>
    private CudaWeight PackInt4(Int4GroupedWeight host)
    {
        int n = host.OutFeatures, k = host.InFeatures, groups = host.Groups;
        var weight = new CudaWeight(_accelerator, CudaFormat.Int4Grouped, DType.F32, n, k, host.GroupSize, host.FormatName);
        WriteRows(Bytes(weight.Data), n, weight.RowBytes, (row, destination) =>
        {
            ReadOnlySpan<byte> source = host.Packed.Row<byte>(row);
            for (int c = 0; c < source.Length; c += 16)
            {
                for (int i = 0; i < 8; i++)
                {
                    byte a = source[c + 2 * i], b = source[c + 2 * i + 1];
                    destination[c + i] = (byte)((a & 0xF) | (b & 0xF) << 4);
                    destination[c + 8 + i] = (byte)(a >> 4 | (b >> 4) << 4);
                }
            }
        });
        WriteRows(((ArrayView<uint>)weight.Scales.View).Cast<byte>(), n, 4 * groups, (row, destination) =>
        {
            ReadOnlySpan<ushort> s = host.Scales.Row<ushort>(row), z = host.Zeros.Row<ushort>(row);
            var words = MemoryMarshal.Cast<byte, uint>(destination);
            for (int g = 0; g < groups; g++)
                words[g] = s[g] | (uint)z[g] << 16;
        });
        return weight;
    }

    private static ArrayView<byte> Bytes(MemoryBuffer1D<Uint4, Stride1D.Dense> buffer) => ((ArrayView<Uint4>)buffer.View).Cast<byte>();

    /// <summary>Fills rows [0, n) of <paramref name="destination"/> (rowBytes each) by converting them on the host
    /// in parallel, <see cref="StagingBytes"/> at a time, and copying each batch up.</summary>
    private void WriteRows(ArrayView<byte> destination, int n, int rowBytes, RowWriter write)
    {
        int batch = (int)Math.Clamp(StagingBytes / Math.Max(rowBytes, 1), 1, n);
        var staging = GC.AllocateUninitializedArray<byte>(batch * rowBytes, pinned: true);
        for (int first = 0; first < n; first += batch)
        {
            int rows = Math.Min(batch, n - first);
            Parallel.For(0, rows, r => write(first + r, staging.AsSpan(r * rowBytes, rowBytes)));
            destination.SubView((long)first * rowBytes, (long)rows * rowBytes).CopyFromCPU(ref staging[0], (long)rows * rowBytes);
            // The next batch reuses the staging array.
            _accelerator.Synchronize();
        }
    }

    // Through WriteRows, so the copy is finished before any kernel on the backend's stream reads the scales (a
    // bare CopyFromCPU of a managed array on the default stream was not, and an int8dq check once read zeros).
    private void WriteRowScales(CudaWeight weight, Func<int, float> scale) =>
        WriteRows(((ArrayView<uint>)weight.Scales.View).Cast<byte>(), weight.OutFeatures, sizeof(float),
            (row, destination) => MemoryMarshal.Write(destination, scale(row)));

    /// <summary>
    /// int8dq's prefill on int8 tensor cores: x quantized to int8 bytes with each token's Σ c (<see cref="Int8Activations"/>),
    /// then one int8 GEMM (<see cref="TensorCoreGemm.Int8"/>: the CPU GEMV's integer dot and scales, to the bit); false
    /// where that does not apply (<see cref="Int8TensorCoreGemm"/>), and the c·s path runs.
    /// </summary>
    private bool Int8DynamicOnTensorCores(ArrayView<float> x, int m, CudaWeight w, ArrayView<float> y)
    {
        if (Int8TensorCoreGemm(m, w.OutFeatures, w) is not { } gemm)
            return false;
        var (codes, sums, scales) = Int8Activations(x, m, w.InFeatures);
        gemm.Int8(_stream, codes, Address(w.Data), y.LoadEffectiveAddressAsPtr(), m, w.OutFeatures, w.InFeatures, scales, sums, Address(w.Scales));
        return true;
    }

    /// <summary>The int8 tensor-core GEMM (its int8 kernels loaded) for an [m, k]·[n, k]ᵀ prefill of int8dq weight
    /// <paramref name="w"/> (n: its rows, or gate's and up's together); null where it does not apply (one row, no GPU, K not a
    /// multiple of 16, or a module the driver rejected: kept in <see cref="Int8TensorCoreError"/>).</summary>
    private TensorCoreGemm? Int8TensorCoreGemm(int m, int n, CudaWeight w)
    {
        int k = w.InFeatures;
        if (w.Format != CudaFormat.Int8Dynamic || !TensorCoreGemm.SupportsInt8(m, n, k) || w.RowBytes != k || !HasTensorCores || Int8TensorCoreError is not null)
            return null;
        // The codes' scratch is 16-byte aligned (an allocation of its own): 16 stands for its address.
        if (ReadyTensorCoreGemm(m, n, k, 16) is not { } gemm)
            return null;
        try
        {
            gemm.LoadInt8();
            return gemm;
        }
        catch (InvalidOperationException e)
        {
            Int8TensorCoreError = e.Message;
            return null;
        }
    }

    /// <summary>x [m, k] quantized for <see cref="TensorCoreGemm.Int8"/> into scratch (valid until the next call): int8
    /// codes, each token's Σ c (s32) and scale.</summary>
    private (nint Codes, nint Sums, nint Scales) Int8Activations(ArrayView<float> x, int m, int k)
    {
        long length = (long)m * k;
        ArrayView<byte> codes = Grown(ref _int8Codes, length).View.SubView(0, length);
        ArrayView<int> sums = Grown(ref _codeSums, Math.Max(m, 64)).View.SubView(0, m);
        ArrayView<float> scales = Grown(ref _tokenScales, Math.Max(m, 64)).View.SubView(0, m);
        (_activationQuantizer ??= new(_accelerator)).LaunchBytes(_stream, x, codes, sums, scales, m, k);
        return (codes.LoadEffectiveAddressAsPtr(), sums.LoadEffectiveAddressAsPtr(), scales.LoadEffectiveAddressAsPtr());
    }

    private static nint Address<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => ((ArrayView<T>)buffer.View).LoadEffectiveAddressAsPtr();

    /// <summary>Why int8dq's prefill went back to the c·s path for good (the driver's JIT error for the int8 GEMM), or null.</summary>
    public string? Int8TensorCoreError { get; private set; }

    /// <summary>What int8dq's prefill hands the int8 GEMM for x [m, k] (for tests: the quantizer also runs where tensor cores do not).</summary>
    internal (sbyte[] Codes, int[] Sums, float[] Scales) Int8ActivationCodes(float[] x, int m, int k)
    {
        using var input = _accelerator.Allocate1D(x);
        using var codes = _accelerator.Allocate1D<byte>((long)m * k);
        using var sums = _accelerator.Allocate1D<int>(m);
        using var scales = _accelerator.Allocate1D<float>(m);
        (_activationQuantizer ??= new(_accelerator)).LaunchBytes(_stream, input.View, codes.View, sums.View, scales.View, m, k);
        _stream.Synchronize();
        return (codes.GetAsArray1D().Select(b => (sbyte)b).ToArray(), sums.GetAsArray1D(), scales.GetAsArray1D());
    }

    /// <summary>int8dq's activation codes [m, k] and token scales [m], grown on demand.</summary>
    private (ArrayView<float> Codes, ArrayView<float> Scales) ActivationScratch(int m, int k)
    {
        long length = (long)m * k;
        return (Grown(ref _codes, length).View.SubView(0, length), Grown(ref _tokenScales, Math.Max(m, 64)).View.SubView(0, m));
    }

    /// <summary>The format a <see cref="RandomWeight"/> name asks for, checked against K.</summary>
    private static (CudaFormat Format, DType Dense, int Group) ParseFormat(string format, int k)
    {
        switch (format)
        {
            case "bf16": return (CudaFormat.Dense, DType.BF16, k);
            case "f16": return (CudaFormat.Dense, DType.F16, k);
            case "f32": return (CudaFormat.Dense, DType.F32, k);
            case Int8PerRowWeight.Name: return (CudaFormat.Int8PerRow, DType.F32, k);
            case Int8DynamicWeight.Name: return (CudaFormat.Int8Dynamic, DType.F32, k);
            case Float8PerRowWeight.Name: return (CudaFormat.Float8PerRow, DType.F32, k);
        }
        if (format.StartsWith("int4wo-", StringComparison.Ordinal) && int.TryParse(format.AsSpan(7), out int group) && group is 32 or 64 or 128 or 256)
        {
            return Int4GroupedWeight.Incompatibility(k, group) is { } reason
                ? throw new ArgumentException($"{format}: {reason}.", nameof(format))
                : (CudaFormat.Int4Grouped, DType.F32, group);
        }
        throw new ArgumentException($"RandomWeight: unknown format \"{format}\" (bf16, f16, f32, int8wo, int8dq, fp8wo, int4wo-32/64/128/256).", nameof(format));
    }

    private void DisposePacked()
    {
        foreach (var weight in _packed.Values)
            weight.Dispose();
        _packed.Clear();
        _codes?.Dispose();
        _int8Codes?.Dispose();
        _codeSums?.Dispose();
        _tokenScales?.Dispose();
        _int4MmaGemv?.Dispose();
    }
}
