using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// float8 weight-only, E4M3 per output row ("fp8wo", torchao's Float8WeightOnlyConfig with PerRow granularity):
/// W[n, k] ≈ e4m3(q[n, k])·scale[n].
/// <para>Layout: <see cref="CodedWeight.Codes"/> is U8 [N, K], the OCP E4M3 code of element k of row n at byte
/// n·K + k (<see cref="Float8E4M3"/>: sign bit 7, exponent bits 6..3 with bias 7, mantissa bits 2..0);
/// <see cref="CodedWeight.Scales"/> is F32 [N, 1].</para>
/// <para>Quantization (<see cref="FloatScaling"/>, torchao's _choose_scale_float8 / _quantize_affine_float8):
/// scale = max(max|W[n, :]|, 1e−12) / 448 in F32, q = e4m3(clamp(W / scale, ±448)), round to nearest even.</para>
/// </summary>
public sealed class Float8PerRowWeight : CodedWeight
{
    public const string Name = "fp8wo";

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public Float8PerRowWeight(Tensor codes, Tensor scales, int inFeatures)
        : base(Name, codes, scales, null, inFeatures, inFeatures, inFeatures)
    {
    }

    public static FloatX Format => Float8E4M3.Format;

    /// <summary>Quantizes a dense [N, K] weight row by row.</summary>
    public static Float8PerRowWeight Quantize(Tensor dense)
    {
        var (n, k) = DenseRows.Shape(dense, Name);
        var codes = Tensor.Allocate(DType.U8, n, k);
        var scales = Tensor.Allocate(DType.F32, n, 1);
        DenseRows.ForEachRow(n, k, (r, row, _) =>
        {
            DenseRows.Read(dense, r, row);
            FloatScaling.Quantize(Format, row, k, codes.Row<byte>(r), scales.Row<float>(r));
        });
        return new Float8PerRowWeight(codes, scales, k);
    }

    /// <summary>destination[k] = DecodeTable[q[k]]·scale, as torchao's _dequantize_affine_float8.</summary>
    private protected override void DequantizeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<float> zeros, Span<float> destination) =>
        FloatScaling.Dequantize(Format, codes, scales, InFeatures, destination);
}
