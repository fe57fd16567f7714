using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// NF4 with double-quantized block scales ("nf4-dq", torchao's NF4Tensor as <c>to_nf4</c> makes it): the codes of
/// <see cref="Nf4BlockwiseWeight"/>, but each block's absmax s_j (j = n·K/B + b, the whole tensor's blocks in
/// order) is stored as int8 q_j with one F32 factor per scaler block of S consecutive blocks and one F32 mean:
/// s_j ≈ q_j / factor[j / S] + mean (<see cref="Nf4.QuantizeScales"/>), W[n, k] ≈ T[code]·s_j.
/// <para>Layout: <see cref="Codes"/> U8 [N, K/2] as nf4; <see cref="ScaleCodes"/> I8 [N, K/B] (q_j at element j);
/// <see cref="ScaleFactors"/> F32 [⌈N·K/B / S⌉]; <see cref="ScaleMean"/> F32 [1]. S is not implied by the shapes
/// (checkpoints store it in metadata).</para>
/// <para>torchao asserts that N·K/B is a multiple of S; here the last scaler block may be shorter (it gets its own
/// factor from its own scales), so every tensor whose K takes blocks of B quantizes, and a tensor torchao accepts
/// gets torchao's values.</para>
/// </summary>
public sealed class Nf4DoubleQuantWeight : IWeight
{
    public const string Family = "nf4-dq";

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public Nf4DoubleQuantWeight(Tensor codes, Tensor scaleCodes, Tensor scaleFactors, Tensor scaleMean, int inFeatures, int blockSize, int scalerBlockSize)
    {
        ArgumentNullException.ThrowIfNull(codes);
        ArgumentNullException.ThrowIfNull(scaleCodes);
        ArgumentNullException.ThrowIfNull(scaleFactors);
        ArgumentNullException.ThrowIfNull(scaleMean);
        string name = NameOf(blockSize);
        if (Nf4BlockwiseWeight.Incompatibility(inFeatures, blockSize) is { } reason)
            throw new ArgumentException($"{name}: {reason}.");
        if (codes.Rank != 2 || codes.DType != DType.U8 || codes.Shape[1] != inFeatures / 2)
            throw new ArgumentException($"{name}: codes must be U8 [N, {inFeatures / 2}]; got {codes}.", nameof(codes));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scalerBlockSize);
        int n = codes.Shape[0], perRow = inFeatures / blockSize;
        long groups = (((long)n * perRow) + scalerBlockSize - 1) / scalerBlockSize;
        if (scaleCodes.Rank != 2 || scaleCodes.DType != DType.I8 || scaleCodes.Shape[0] != n || scaleCodes.Shape[1] != perRow)
            throw new ArgumentException($"{name}: scale codes must be I8 [{n}, {perRow}]; got {scaleCodes}.", nameof(scaleCodes));
        if (scaleFactors.Rank != 1 || scaleFactors.DType != DType.F32 || scaleFactors.Shape[0] != groups)
            throw new ArgumentException($"{name}: scale factors must be F32 [{groups}]; got {scaleFactors}.", nameof(scaleFactors));
        if (scaleMean.Rank != 1 || scaleMean.DType != DType.F32 || scaleMean.Shape[0] != 1)
            throw new ArgumentException($"{name}: the scale mean must be F32 [1]; got {scaleMean}.", nameof(scaleMean));
        Codes = codes;
        ScaleCodes = scaleCodes;
        ScaleFactors = scaleFactors;
        ScaleMean = scaleMean;
        InFeatures = inFeatures;
        BlockSize = blockSize;
        ScalerBlockSize = scalerBlockSize;
        FormatName = name;
    }

    /// <summary>"nf4-dq" at torchao's default block size 64, else "nf4-dq-B".</summary>
    public static string NameOf(int blockSize) => blockSize == Nf4.DefaultBlockSize ? Family : $"{Family}-{blockSize}";

    /// <summary>Quantizes a dense [N, K] weight as nf4, then its scales in blocks of <paramref name="scalerBlockSize"/>.</summary>
    public static Nf4DoubleQuantWeight Quantize(Tensor dense, int blockSize = Nf4.DefaultBlockSize, int scalerBlockSize = Nf4.DefaultScalerBlockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scalerBlockSize);
        var plain = Nf4BlockwiseWeight.Quantize(dense, blockSize);
        using Tensor scales = plain.Scales; // the codes move into the new weight; only the F32 scales go
        int groups = checked((int)((scales.ElementCount + scalerBlockSize - 1) / scalerBlockSize));
        var scaleCodes = Tensor.Allocate(DType.I8, scales.Shape);
        var factors = Tensor.Allocate(DType.F32, groups);
        var mean = Tensor.Allocate(DType.F32, 1);
        mean.AsSpan<float>()[0] = Nf4.QuantizeScales(scales.AsSpan<float>(), scalerBlockSize, scaleCodes.AsSpan<sbyte>(), factors.AsSpan<float>());
        return new Nf4DoubleQuantWeight(plain.Codes, scaleCodes, factors, mean, plain.InFeatures, blockSize, scalerBlockSize);
    }

    /// <summary>The NF4 codes: U8 [N, K/2].</summary>
    public Tensor Codes { get; }

    /// <summary>The int8 block scales: I8 [N, K/B].</summary>
    public Tensor ScaleCodes { get; }

    /// <summary>One factor per scaler block: F32 [⌈N·K/B / S⌉].</summary>
    public Tensor ScaleFactors { get; }

    /// <summary>The mean of all block scales: F32 [1].</summary>
    public Tensor ScaleMean { get; }

    public int BlockSize { get; }

    /// <summary>S: block scales per factor.</summary>
    public int ScalerBlockSize { get; }

    public int Blocks => InFeatures / BlockSize;
    public int OutFeatures => Codes.Shape[0];
    public int InFeatures { get; }
    public string FormatName { get; }
    public long ByteLength => Codes.ByteLength + ScaleCodes.ByteLength + ScaleFactors.ByteLength + ScaleMean.ByteLength;

    /// <summary>Row <paramref name="row"/>'s block scales, s_j = q_j / factor + mean, as the kernels decode them.</summary>
    public void DequantizeScales(int row, Span<float> destination) =>
        Nf4.DequantizeScales(ScaleCodes.AsSpan<sbyte>(), ScaleFactors.AsSpan<float>(), ScaleMean.AsSpan<float>()[0], ScalerBlockSize, row * Blocks, destination[..Blocks]);

    /// <summary>The reference: destination[k] = T[q[row, k]]·s[row, k / B], the scales decoded first, as
    /// torchao's get_original_weight.</summary>
    public void Dequantize(int row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, OutFeatures);
        var scales = new float[Blocks];
        DequantizeScales(row, scales);
        Nf4.Dequantize(Codes.Row<byte>(row), scales, BlockSize, destination);
    }

    public void Dispose()
    {
        Codes.Dispose();
        ScaleCodes.Dispose();
        ScaleFactors.Dispose();
        ScaleMean.Dispose();
    }
}
