using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Cuda.Kernels;
using Lowbit.Cuda.Ptx;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>
/// Prefill linear layers (m &gt; 1) with dense bf16 weights, and quantized ones expanded to bf16 (int8dq: int8 × int8), on tensor cores: PTX of ours
/// (<see cref="TensorCoreGemmPtx"/>) JIT-compiled by the driver on first use. Only on a CUDA GPU (ILGPU's CPU
/// accelerator cannot run PTX and keeps the ILGPU GEMM) and for k a multiple of 8. Activations are rounded to
/// bf16 on the way in (relative error up to 2^-9 an element; the f32 GEMV of decode is unchanged). If the driver
/// rejects the PTX, Linear keeps the ILGPU GEMM and <see cref="TensorCoreError"/> holds the JIT log
/// (<c>lowbit selftest --device cuda</c> prints it).
/// </summary>
public sealed partial class CudaBackend
{
    private readonly Dictionary<GemmTile, TensorCoreGemm> _tensorCoreGemms = [];
    private MemoryBuffer1D<byte, Stride1D.Dense>? _activationsBf16; // [m, k] bf16 scratch, grown on demand
    private readonly MemoryBuffer1D<byte, Stride1D.Dense>?[] _weightsBf16 = new MemoryBuffer1D<byte, Stride1D.Dense>?[2]; // quantized weights expanded for prefill (gate and up at once), grown on demand
    private Bf16Dequantizer? _bf16Dequantizer;
    private FlashAttention? _flashAttention;

    /// <summary>Whether prefill attention runs on tensor cores where it can (on by default; the bench turns it off to
    /// time the ILGPU flash kernel).</summary>
    public bool AttentionOnTensorCores { get; set; } = true;

    /// <summary>Warps a block of the tensor-core prefill attention (4 or 8; for the bench's comparison).</summary>
    public int AttentionWarps
    {
        get => _flashAttention?.Warps ?? FlashAttentionPtx.DefaultWarps;
        set => (_flashAttention ??= new(_accelerator)).Warps = value;
    }

    /// <summary>Why prefill attention went back to the ILGPU kernel for good (the driver's JIT error), or null.</summary>
    public string? AttentionTensorCoreError { get; private set; }

    /// <summary>The tensor-core prefill attention with its module for <paramref name="headDim"/> loaded, or null where it
    /// does not apply (no GPU, D not 64 or 128, turned off, or the driver rejected the PTX: kept in
    /// <see cref="AttentionTensorCoreError"/>), so the ILGPU flash kernel runs. Its operands are rounded to bf16.</summary>
    private FlashAttention? ReadyFlashAttention(int headDim)
    {
        if (!AttentionOnTensorCores || !HasTensorCores || AttentionTensorCoreError is not null || !FlashAttentionPtx.Supports(headDim))
            return null;
        try
        {
            (_flashAttention ??= new(_accelerator)).Load(headDim);
            return _flashAttention;
        }
        catch (InvalidOperationException e)
        {
            AttentionTensorCoreError = e.Message;
            return null;
        }
    }

    /// <summary>The tiling Linear uses for every shape; null (the default): <see cref="GemmTile.For"/> picks one by the
    /// shape and the GPU (the bench times every one of <see cref="GemmTile.Candidates"/>).</summary>
    public GemmTile? TensorCoreTile { get; set; }

    /// <summary>The tiling Linear uses for an [m, k]·[n, k]ᵀ product.</summary>
    public GemmTile TileFor(int m, int n) => TensorCoreTile
        ?? (_accelerator is CudaAccelerator { Architecture: { } arch } cuda ? GemmTile.For(m, n, arch.Major, arch.Minor, cuda.NumMultiprocessors) : GemmTile.Default);

    /// <summary>True on a CUDA GPU, where PTX kernels run.</summary>
    public bool HasTensorCores => _accelerator is CudaAccelerator;

    /// <summary>True where this GPU runs <paramref name="tile"/>'s instructions (wgmma: sm_90 only).</summary>
    public bool Runs(GemmTile tile)
    {
        ArgumentNullException.ThrowIfNull(tile);
        return _accelerator is CudaAccelerator { Architecture: { } arch } && tile.RunsOn(arch.Major, arch.Minor);
    }

    /// <summary>Why Linear went back to the ILGPU GEMM for good (the driver's JIT error), or null.</summary>
    public string? TensorCoreError { get; private set; }

    /// <summary>destination[m, n] = bf16(x[m, k]) · w[n, k]ᵀ on tensor cores with <paramref name="tile"/>, loaded on first use.</summary>
    /// <exception cref="InvalidOperationException">The driver rejected the PTX (the message holds the JIT log).</exception>
    public void LinearOnTensorCores(TensorView x, Tensor w, TensorView destination, GemmTile tile)
    {
        ArgumentNullException.ThrowIfNull(w);
        int m = x.Rows, n = w.Shape[0], k = x.Columns;
        if (w.DType != DType.BF16 || w.Columns != k || destination.Rows != m || destination.Columns != n)
            throw new ArgumentException($"tensor-core linear: x {x}, w {w} (BF16 [n, k] expected), destination {destination} do not match.", nameof(w));
        if (!TensorCoreGemm.Supports(m, n, k) || x.Data % 16 != 0)
            throw new ArgumentException($"tensor-core linear: m={m} n={n} k={k} needs k a multiple of 8 and x 16-byte aligned.", nameof(x));
        var gemm = TensorCoreGemmFor(tile);
        _ = F32(x); // bounds checks
        _ = F32(destination);
        // On the backend's stream, so the PTX launches stay in order with the ILGPU kernels.
        gemm.Launch(_stream, x.Data, ActivationsBf16(m, k), Words(w).LoadEffectiveAddressAsPtr(), destination.Data, m, n, k);
    }

    /// <summary>The [m, k] bf16 scratch the GEMM converts x into.</summary>
    private nint ActivationsBf16(int m, int k) => Grown(ref _activationsBf16, (long)m * k * 2).NativePtr;

    /// <summary>The tensor-core GEMM for an [m, k]·[n, k]ᵀ prefill with x at <paramref name="x"/>, loaded on first
    /// use; null where it does not apply (one row, no GPU, K not a multiple of 8, x not 16-byte aligned, or the
    /// driver rejected the PTX: kept in <see cref="TensorCoreError"/>), so the ILGPU kernels run.</summary>
    private TensorCoreGemm? ReadyTensorCoreGemm(int m, int n, int k, nint x)
    {
        if (m < 2 || !HasTensorCores || TensorCoreError is not null || !TensorCoreGemm.Supports(m, n, k) || x % 16 != 0)
            return null;
        try
        {
            return TensorCoreGemmFor(TileFor(m, n));
        }
        catch (InvalidOperationException e)
        {
            TensorCoreError = e.Message;
            return null;
        }
    }

    /// <summary>
    /// Prefill of a quantized weight on tensor cores: the weight expanded into a bf16 scratch matrix
    /// (<see cref="Bf16Dequantizer"/>), then the bf16 GEMM; false where that does not apply (no GPU, K not a multiple
    /// of 8, x at <paramref name="x"/> not 16-byte aligned), and the SIMT GEMM runs.
    /// </summary>
    private bool TensorCorePackedLinear(nint x, int m, CudaWeight w, TensorView destination)
    {
        int n = w.OutFeatures, k = w.InFeatures;
        if (!Bf16Dequantizer.Supports(w.Format) || ReadyTensorCoreGemm(m, n, k, x) is not { } gemm)
            return false;
        gemm.Launch(_stream, x, ActivationsBf16(m, k), Bf16Weight(w), destination.Data, m, n, k);
        return true;
    }

    /// <summary>The bf16 [n, k] matrix the tensor-core GEMM reads for <paramref name="weight"/>: a dense bf16 weight as it
    /// is, a packed one expanded into a scratch matrix (valid until the next expansion).</summary>
    /// <param name="scratch">Which of two scratch matrices a packed weight expands into (0 or 1: two weights at once).</param>
    private nint Bf16Weight(IWeight weight, int scratch = 0)
    {
        if (weight is DenseWeight dense)
            return Words(dense.Tensor).LoadEffectiveAddressAsPtr();
        var packed = weight as CudaWeight ?? Packed(weight);
        var expanded = Grown(ref _weightsBf16[scratch], (long)packed.OutFeatures * packed.InFeatures * 2);
        (_bf16Dequantizer ??= new(_accelerator)).Launch(_stream, packed, ((ArrayView<byte>)expanded.View).Cast<uint>());
        return expanded.NativePtr;
    }

    /// <summary>
    /// Several prefill products of one x (q/k/v, gate and up) on tensor cores with x rounded to bf16 once: dense bf16
    /// weights, and int8wo, fp8wo and int4wo expanded to bf16 first; or, all int8dq, x quantized to int8 once for the
    /// int8 GEMMs; false, with nothing launched, where any of them does not take that path.
    /// </summary>
    private bool TensorCoreLinears(TensorView x, ReadOnlySpan<IWeight> weights, ReadOnlySpan<TensorView> destinations)
    {
        int m = x.Rows, k = x.Columns;
        if (Int8TensorCoreGemms(m, weights) is { } int8)
        {
            CheckDestinations(m, weights, destinations);
            var (codes, sums, scales) = Int8Activations(F32(x), m, k);
            for (int i = 0; i < weights.Length; i++)
                int8[i].Gemm.Int8(_stream, codes, Address(int8[i].Weight.Data), destinations[i].Data, m, weights[i].OutFeatures, k, scales, sums, Address(int8[i].Weight.Scales));
            return true;
        }
        var gemms = new TensorCoreGemm[weights.Length];
        for (int i = 0; i < weights.Length; i++)
        {
            if (!ReadsXAsBf16(weights[i]) || ReadyTensorCoreGemm(m, weights[i].OutFeatures, k, x.Data) is not { } gemm)
                return false;
            gemms[i] = gemm;
        }
        _ = F32(x); // bounds checks
        CheckDestinations(m, weights, destinations);
        nint converted = ActivationsBf16(m, k);
        gemms[0].Convert(_stream, x.Data, converted, m, k);
        for (int i = 0; i < weights.Length; i++)
            gemms[i].Multiply(_stream, converted, Bf16Weight(weights[i]), destinations[i].Data, m, weights[i].OutFeatures, k);
        return true;
    }

    private void CheckDestinations(int m, ReadOnlySpan<IWeight> weights, ReadOnlySpan<TensorView> destinations)
    {
        for (int i = 0; i < weights.Length; i++)
        {
            int n = weights[i].OutFeatures;
            if (destinations[i].Rows != m || destinations[i].Columns != n)
                throw new ArgumentException($"tensor-core linear: destination {destinations[i]} for [{m}, {n}].", nameof(destinations));
            _ = F32(destinations[i]); // bounds checks
        }
    }

    /// <summary>The int8 GEMM of each weight when every one is int8dq and takes int8 tensor cores at this m, else null.</summary>
    private (TensorCoreGemm Gemm, CudaWeight Weight)[]? Int8TensorCoreGemms(int m, ReadOnlySpan<IWeight> weights)
    {
        var gemms = new (TensorCoreGemm, CudaWeight)[weights.Length];
        for (int i = 0; i < weights.Length; i++)
        {
            if (PackedWeight(weights[i]) is not { Format: CudaFormat.Int8Dynamic } w || Int8TensorCoreGemm(m, w.OutFeatures, w) is not { } gemm)
                return null;
            gemms[i] = (gemm, w);
        }
        return gemms;
    }

    /// <summary>
    /// destination[m, n] = silu(x·gateᵀ) ⊙ (x·upᵀ) in one tensor-core launch (a wgmma tiling's gated product: gate and up
    /// rows side by side in a block, the SiLU product in its epilogue, no up output and no elementwise pass); false, with
    /// nothing launched, where that does not apply (no wgmma tiling for the shape, or a weight that does not take tensor cores).
    /// </summary>
    private bool GatedOnTensorCores(TensorView x, IWeight gate, IWeight up, TensorView destination)
    {
        int m = x.Rows, n = gate.OutFeatures, k = x.Columns;
        if (up.OutFeatures == n && PackedWeight(gate) is { Format: CudaFormat.Int8Dynamic } g && PackedWeight(up) is { Format: CudaFormat.Int8Dynamic } u
            && Int8TensorCoreGemm(m, 2 * n, g) is { HasGated: true } int8)
        {
            if (destination.Rows != m || destination.Columns != n)
                throw new ArgumentException($"gated tensor-core linear: destination {destination} for [{m}, {n}].", nameof(destination));
            _ = F32(destination);
            var (codes, sums, scales) = Int8Activations(F32(x), m, k);
            int8.GatedInt8(_stream, codes, Address(g.Data), Address(u.Data), destination.Data, m, n, k, scales, sums, Address(g.Scales), Address(u.Scales));
            return true;
        }
        if (up.OutFeatures != n || !ReadsXAsBf16(gate) || !ReadsXAsBf16(up) || ReadyTensorCoreGemm(m, 2 * n, k, x.Data) is not { HasGated: true } gemm)
            return false;
        if (destination.Rows != m || destination.Columns != n)
            throw new ArgumentException($"gated tensor-core linear: destination {destination} for [{m}, {n}].", nameof(destination));
        _ = F32(x);
        _ = F32(destination);
        nint converted = ActivationsBf16(m, k);
        gemm.Convert(_stream, x.Data, converted, m, k);
        gemm.Gated(_stream, converted, Bf16Weight(gate, 0), Bf16Weight(up, 1), destination.Data, m, n, k);
        return true;
    }

    /// <summary>True for a weight the tensor-core GEMM multiplies with x itself: dense bf16, or a format the bf16
    /// expansion takes, except int8dq (it multiplies its own activation codes, not x).</summary>
    private bool ReadsXAsBf16(IWeight weight) =>
        weight is DenseWeight { Tensor.DType: DType.BF16 }
        || PackedWeight(weight) is { Format: not CudaFormat.Int8Dynamic } packed && Bf16Dequantizer.Supports(packed.Format);

    /// <summary>The loaded kernels of <paramref name="tile"/>, for the bench's report.</summary>
    public TensorCoreGemm TensorCoreGemmFor(GemmTile tile)
    {
        ArgumentNullException.ThrowIfNull(tile);
        if (!HasTensorCores)
            throw new NotSupportedException($"Tensor-core kernels are PTX and need a CUDA GPU; this backend runs on {_accelerator.AcceleratorType}.");
        if (!Runs(tile))
            throw new NotSupportedException($"Tensor-core GEMM {tile.Name} needs {(tile.Wgmma ? "an sm_90 GPU (wgmma)" : "sm_80 or later (mma.sync)")}; this GPU is {_accelerator.Name}.");
        if (!_tensorCoreGemms.TryGetValue(tile, out var gemm))
        {
            gemm = new TensorCoreGemm(_accelerator, tile);
            _tensorCoreGemms.Add(tile, gemm);
        }
        return gemm;
    }

    /// <summary>Linear's tensor-core path; false when it does not apply, so the ILGPU kernels run.</summary>
    private bool TensorCoreLinear(TensorView x, DenseWeight weight, TensorView destination)
    {
        if (weight.Tensor.DType != DType.BF16 || ReadyTensorCoreGemm(x.Rows, weight.OutFeatures, x.Columns, x.Data) is null)
            return false;
        LinearOnTensorCores(x, weight.Tensor, destination, TileFor(x.Rows, weight.OutFeatures));
        return true;
    }

    /// <summary>The bf16 matrix [N, K] prefill expands a quantized weight into (for tests: the expansion also runs
    /// where tensor cores do not).</summary>
    internal ushort[] ExpandedToBf16(IWeight weight)
    {
        var w = weight as CudaWeight ?? Packed(weight);
        var words = new uint[(long)w.OutFeatures * w.InFeatures / 2];
        using var buffer = _accelerator.Allocate1D<uint>(words.Length);
        (_bf16Dequantizer ??= new(_accelerator)).Launch(_stream, w, buffer.View);
        buffer.View.CopyToCPU(_stream, ref words[0], words.Length);
        _stream.Synchronize();
        return System.Runtime.InteropServices.MemoryMarshal.Cast<uint, ushort>(words).ToArray();
    }

    private void DisposeTensorCores()
    {
        foreach (var gemm in _tensorCoreGemms.Values)
            gemm.Dispose();
        _tensorCoreGemms.Clear();
        _flashAttention?.Dispose();
        _activationsBf16?.Dispose();
        foreach (var buffer in _weightsBf16)
            buffer?.Dispose();
    }
}
