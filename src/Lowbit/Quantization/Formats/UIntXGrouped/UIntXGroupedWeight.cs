using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// uintB weight-only (B = 1..7), asymmetric per group of G along K with an integer zero point ("uintx-B-G",
/// torchao's UIntXWeightOnlyConfig(torch.uintB, group_size=G) without HQQ): W[n, k] ≈ (q[n, k] − zero[n, g])·scale[n, g],
/// g = k / G, q in [0, 2^B − 1].
/// <para>Layout: <see cref="CodedWeight.Codes"/> is U8 [N, K·B/8], each row a <see cref="BitPacking"/> stream:
/// element k at bits [k·B, (k + 1)·B) of the row, least significant bit first (so every 16 elements fill 2·B
/// bytes). <see cref="CodedWeight.Scales"/> is F32 [N, K/G] (values rounded to the dense weight's dtype, as torchao
/// keeps scales in it); <see cref="CodedWeight.Zeros"/> is F32 [N, K/G] holding the integer zero points.
/// (torchao's own UintxLayout shards the bits across tensor planes; this stream has the same size.)</para>
/// <para>Quantization: <see cref="Affine"/> with torchao's arguments: MappingType.ASYMMETRIC, quant range
/// [0, 2^B − 1], ZeroPointDomain.INT, preserve_zero, eps = f32 eps: scale = max((max(W, 0) − min(W, 0)) / (2^B − 1), eps),
/// zero = clamp(−round(min(W, 0) / scale), 0, 2^B − 1), q = clamp(round(W·(1/scale)) + zero, 0, 2^B − 1).</para>
/// </summary>
public sealed class UIntXGroupedWeight : CodedWeight
{
    public const string Family = "uintx";

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public UIntXGroupedWeight(Tensor codes, Tensor scales, Tensor zeros, int inFeatures, int bits, int groupSize)
        : base(NameOf(bits, groupSize), codes, scales, zeros ?? throw new ArgumentNullException(nameof(zeros)), inFeatures,
            Checked(inFeatures, bits, groupSize), inFeatures / 8 * bits)
    {
        Bits = bits;
    }

    /// <summary>B: bits per code.</summary>
    public int Bits { get; }

    public static string NameOf(int bits, int groupSize) => $"{Family}-{bits}-{groupSize}";

    /// <summary>torchao's scheme for uintB with scales in <paramref name="scaleDType"/>.</summary>
    public static AffineScheme Scheme(int bits, DType scaleDType) =>
        new(MappingType.Asymmetric, QuantRange.UInt(bits), ZeroPointDomain.Int, AffineScheme.F32Eps, scaleDType);

    /// <summary>Quantizes a dense [N, K] weight group by group.</summary>
    public static UIntXGroupedWeight Quantize(Tensor dense, int bits, int groupSize)
    {
        var (n, k) = DenseRows.Shape(dense, NameOf(bits, groupSize));
        Checked(k, bits, groupSize);
        var scheme = Scheme(bits, dense.DType);
        int groups = k / groupSize;
        var codes = Tensor.Allocate(DType.U8, n, k / 8 * bits);
        var scales = Tensor.Allocate(DType.F32, n, groups);
        var zeros = Tensor.Allocate(DType.F32, n, groups);
        DenseRows.ForEachRow(n, k, (r, row, q) =>
        {
            DenseRows.QuantizeGroups(dense, r, row, q, groupSize, scheme, scales, zeros);
            var values = new byte[k];
            for (int i = 0; i < k; i++)
                values[i] = (byte)q[i];
            BitPacking.Pack(values, bits, codes.Row<byte>(r));
        });
        return new UIntXGroupedWeight(codes, scales, zeros, k, bits, groupSize);
    }

    /// <summary>Why a weight with <paramref name="inFeatures"/> columns cannot take uintB groups of
    /// <paramref name="groupSize"/>, or null when it can.</summary>
    public static string? Incompatibility(int inFeatures, int bits, int groupSize) =>
        bits is < 1 or > 7 ? $"{bits} bits is outside 1..7" : GroupIncompatibility(inFeatures, groupSize);

    private static int Checked(int inFeatures, int bits, int groupSize) => Incompatibility(inFeatures, bits, groupSize) is { } reason
        ? throw new ArgumentException($"{NameOf(bits, groupSize)}: {reason}.")
        : groupSize;

    /// <summary>destination[k] = (q[k] − zero[g])·scale[g], as torchao's dequantize_affine (INT zero point).</summary>
    private protected override void DequantizeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<float> zeros, Span<float> destination)
    {
        var q = new byte[InFeatures];
        BitPacking.Unpack(codes, Bits, q);
        var scheme = Scheme(Bits, DType.F32);
        for (int k = 0; k < InFeatures; k++)
            destination[k] = Affine.Dequantize(q[k], new QParams(scales[k / GroupSize], zeros[k / GroupSize]), scheme);
    }
}
