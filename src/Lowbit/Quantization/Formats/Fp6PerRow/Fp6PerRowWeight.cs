using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// FP6 E3M2 weight-only with one scale per output row ("fp6", torchao's FpxWeightOnlyConfig(ebits=3, mbits=2),
/// the FP6-LLM format): W[n, k] ≈ fp6(q[n, k])·scale[n].
/// <para>Layout: <see cref="CodedWeight.Codes"/> is U8 [N, 3K/4], each row a 6-bit <see cref="BitPacking"/>
/// stream (<see cref="FloatX.Pack"/>): codes 4j..4j+3 in bytes 3j..3j+2 as byte0 = c0 | c1&lt;&lt;6,
/// byte1 = c1&gt;&gt;2 | c2&lt;&lt;4, byte2 = c2&gt;&gt;4 | c3&lt;&lt;2; a code is sign bit 5, exponent bits 4..3 (bias 3),
/// mantissa bits 1..0, every code finite (max 28). <see cref="CodedWeight.Scales"/> is F32 [N, 1]. K must be a
/// multiple of 4 (rows start on a byte). Not torchao's tensor-core layout (<c>_pack_tc_fp6</c>), which a GPU
/// kernel would need as a layout of its own.</para>
/// <para>Quantization (<see cref="FloatScaling"/>, torchao's _choose_qparams_affine_floatx /
/// _quantize_affine_floatx): scale = max(max|W[n, :]|, 1e−12) / 28, q = fp6(W / scale), nearest even, saturating.
/// torchao keeps the scale in F16 for its kernel; here it is F32.</para>
/// </summary>
public sealed class Fp6PerRowWeight : CodedWeight
{
    public const string Name = "fp6";

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public Fp6PerRowWeight(Tensor codes, Tensor scales, int inFeatures)
        : base(Name, codes, scales, null, Checked(inFeatures), inFeatures, inFeatures / 4 * 3)
    {
    }

    public static FloatX Format => FloatX.Fp6E3M2;

    /// <summary>Quantizes a dense [N, K] weight row by row.</summary>
    public static Fp6PerRowWeight Quantize(Tensor dense)
    {
        var (n, k) = DenseRows.Shape(dense, Name);
        Checked(k);
        var codes = Tensor.Allocate(DType.U8, n, k / 4 * 3);
        var scales = Tensor.Allocate(DType.F32, n, 1);
        DenseRows.ForEachRow(n, k, (r, row, _) =>
        {
            DenseRows.Read(dense, r, row);
            var unpacked = new byte[k];
            FloatScaling.Quantize(Format, row, k, unpacked, scales.Row<float>(r));
            Format.Pack(unpacked, codes.Row<byte>(r));
        });
        return new Fp6PerRowWeight(codes, scales, k);
    }

    /// <summary>Why a weight with <paramref name="inFeatures"/> columns cannot be fp6, or null when it can.</summary>
    public static string? Incompatibility(int inFeatures) => inFeatures % 4 != 0 ? $"K={inFeatures} not a multiple of 4" : null;

    private static int Checked(int inFeatures) => Incompatibility(inFeatures) is { } reason
        ? throw new ArgumentException($"{Name}: {reason}.")
        : inFeatures;

    /// <summary>destination[k] = fp6(q[k])·scale, as torchao's _dequantize_affine_floatx.</summary>
    private protected override void DequantizeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<float> zeros, Span<float> destination)
    {
        var unpacked = new byte[InFeatures];
        Format.Unpack(codes, unpacked);
        FloatScaling.Dequantize(Format, unpacked, scales, InFeatures, destination);
    }
}
