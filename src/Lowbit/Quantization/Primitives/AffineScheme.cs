using Lowbit.Tensors;

namespace Lowbit.Quantization.Primitives;

/// <summary>How a block's range maps to integers (torchao's MappingType).</summary>
public enum MappingType
{
    /// <summary>scale = max(|min|, |max|) / ((quant_max − quant_min) / 2), zero point at the middle of the range.</summary>
    Symmetric,

    /// <summary>scale = (max − min) / (quant_max − quant_min), zero point where min lands.</summary>
    Asymmetric,
}

/// <summary>Where the zero point lives (torchao's ZeroPointDomain).</summary>
public enum ZeroPointDomain
{
    /// <summary>An integer: q = clamp(round(x / s) + z), x ≈ (q − z)·s.</summary>
    Int,

    /// <summary>A float, tinygemm's form: x ≈ (q − mid)·s + z with mid = (quant_max + quant_min + 1) / 2.</summary>
    Float,
}

/// <summary>The integers a quantized value may take, [QuantMin, QuantMax].</summary>
public readonly record struct QuantRange
{
    public QuantRange(int quantMin, int quantMax)
    {
        if (quantMin >= quantMax)
            throw new ArgumentException($"quant_min {quantMin} must be below quant_max {quantMax}.");
        QuantMin = quantMin;
        QuantMax = quantMax;
    }

    public int QuantMin { get; }
    public int QuantMax { get; }

    public static QuantRange Int8 => new(-128, 127);
    public static QuantRange UInt8 => new(0, 255);
    public static QuantRange Int4 => new(-8, 7);
    public static QuantRange UInt4 => new(0, 15);

    /// <summary>uintB: [0, 2^B − 1], B in 1..8.</summary>
    public static QuantRange UInt(int bits) => bits is >= 1 and <= 8
        ? new(0, (1 << bits) - 1)
        : throw new ArgumentOutOfRangeException(nameof(bits), bits, "uintB takes 1 to 8 bits.");

    /// <summary>intB: [−2^(B−1), 2^(B−1) − 1], B in 2..8.</summary>
    public static QuantRange Int(int bits) => bits is >= 2 and <= 8
        ? new(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        : throw new ArgumentOutOfRangeException(nameof(bits), bits, "intB takes 2 to 8 bits.");

    /// <summary>(quant_max + quant_min + 1) / 2 as a float: tinygemm's offset (8 for uint4).</summary>
    public float MidPoint => (QuantMax + QuantMin + 1) / 2f;

    public override string ToString() => $"[{QuantMin}, {QuantMax}]";
}

/// <summary>A block's quantization parameters. Zero points of the Int domain are whole numbers held as floats.</summary>
public readonly record struct QParams(float Scale, float ZeroPoint);

/// <summary>
/// The arguments of torchao's choose_qparams_affine / quantize_affine / dequantize_affine that do not depend
/// on the data: mapping, integer range, zero-point domain, eps (the smallest scale), and the dtypes scales and
/// float zero points are rounded to. Symmetric mapping has an Int zero point; the Float domain is asymmetric
/// and does not preserve zero (torchao's _choose_qparams_affine_tinygemm).
/// </summary>
public sealed record AffineScheme
{
    public AffineScheme(MappingType mapping, QuantRange range, ZeroPointDomain domain, float eps, DType scaleDType, DType zeroPointDType = DType.F32)
    {
        if (mapping == MappingType.Symmetric && domain != ZeroPointDomain.Int)
            throw new ArgumentException("Symmetric mapping has an Int zero point (torchao rejects FLOAT for symmetric).", nameof(domain));
        if (!(eps > 0) || float.IsInfinity(eps))
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps is the smallest scale and must be positive and finite.");
        if (scaleDType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentOutOfRangeException(nameof(scaleDType), scaleDType, "Scales are F32, BF16 or F16.");
        if (zeroPointDType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentOutOfRangeException(nameof(zeroPointDType), zeroPointDType, "Float zero points are F32, BF16 or F16.");
        Mapping = mapping;
        Range = range;
        Domain = domain;
        Eps = eps;
        ScaleDType = scaleDType;
        ZeroPointDType = zeroPointDType;
    }

    public MappingType Mapping { get; }
    public QuantRange Range { get; }
    public ZeroPointDomain Domain { get; }
    public float Eps { get; }
    public DType ScaleDType { get; }

    /// <summary>Dtype of Float-domain zero points (Int-domain ones are integers).</summary>
    public DType ZeroPointDType { get; }

    /// <summary>torch.finfo(torch.float32).eps, torchao's int8 weight-only eps.</summary>
    public const float F32Eps = 1.1920929e-7f;

    /// <summary>torchao Int8WeightOnlyConfig: symmetric int8 [−128, 127] per row, eps = f32 eps, scales in
    /// <paramref name="scaleDType"/> (torchao keeps the weight's dtype).</summary>
    public static AffineScheme Int8Symmetric(DType scaleDType) =>
        new(MappingType.Symmetric, QuantRange.Int8, ZeroPointDomain.Int, F32Eps, scaleDType);

    /// <summary>torchao Int4WeightOnlyConfig (tinygemm): asymmetric uint4 [0, 15], Float zero point, eps 1e-6,
    /// scales and zero points in BF16.</summary>
    public static AffineScheme UInt4Tinygemm { get; } =
        new(MappingType.Asymmetric, QuantRange.UInt4, ZeroPointDomain.Float, 1e-6f, DType.BF16, DType.BF16);
}
