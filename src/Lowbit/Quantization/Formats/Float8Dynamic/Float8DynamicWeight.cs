using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>Where one float8 scale applies (torchao's PerTensor / PerRow granularities).</summary>
public enum Float8Granularity
{
    /// <summary>One scale for the whole weight, and one for all of a call's activations.</summary>
    PerTensor,

    /// <summary>One scale per weight row, and one per token.</summary>
    PerRow,
}

/// <summary>
/// float8 weight and float8 dynamic activations ("fp8dq-tensor", "fp8dq-row"; torchao's
/// Float8DynamicActivationFloat8WeightConfig(granularity=PerTensor() / PerRow())): the weight is E4M3 with
/// scale = max(amax, 1e−12) / 448 over the whole tensor or per row, and at run time the activations are cast the
/// same way (over the whole x [M, K] or per token), y = Σ_k (e4m3(q_x)·s_x)·(e4m3(q_w)·s_w).
/// <para>Layout: exactly <see cref="Float8PerRowWeight"/>'s (U8 E4M3 codes [N, K] + F32 scale [N, 1]); a
/// per-tensor weight has the same scale in every row.</para>
/// </summary>
public sealed class Float8DynamicWeight : IWeight
{
    public const string Family = "fp8dq";

    /// <summary>Wraps the float8 weight (a loaded checkpoint's tensors, or a fresh quantization).</summary>
    public Float8DynamicWeight(Float8PerRowWeight weight, Float8Granularity granularity)
    {
        ArgumentNullException.ThrowIfNull(weight);
        Weight = weight;
        Granularity = granularity;
        FormatName = NameOf(granularity);
    }

    public Float8PerRowWeight Weight { get; }

    public Float8Granularity Granularity { get; }

    public int OutFeatures => Weight.OutFeatures;
    public int InFeatures => Weight.InFeatures;
    public string FormatName { get; }
    public long ByteLength => Weight.ByteLength;

    public static string NameOf(Float8Granularity granularity) => granularity == Float8Granularity.PerRow ? $"{Family}-row" : $"{Family}-tensor";

    /// <summary>Quantizes a dense [N, K] weight at <paramref name="granularity"/>.</summary>
    public static Float8DynamicWeight Quantize(Tensor dense, Float8Granularity granularity)
    {
        if (granularity == Float8Granularity.PerRow)
            return new(Float8PerRowWeight.Quantize(dense), granularity);
        var (n, k) = DenseRows.Shape(dense, NameOf(granularity));
        FloatX format = Float8PerRowWeight.Format;
        var row = new float[k];
        float scale = 0;
        for (int r = 0; r < n; r++)
        {
            DenseRows.Read(dense, r, row);
            scale = MathF.Max(scale, FloatScaling.ChooseScale(format, row)); // max over rows of max(amax, 1e−12)/448
        }

        var codes = Tensor.Allocate(DType.U8, n, k);
        var scales = Tensor.Allocate(DType.F32, n, 1);
        DenseRows.ForEachRow(n, k, (r, values, _) =>
        {
            DenseRows.Read(dense, r, values);
            Span<byte> c = codes.Row<byte>(r);
            for (int i = 0; i < k; i++)
                c[i] = format.Encode(values[i] / scale);
            scales.Row<float>(r)[0] = scale;
        });
        return new(new Float8PerRowWeight(codes, scales, k), granularity);
    }

    /// <summary>The weight's reference dequantization (activations are cast by the kernel).</summary>
    public void Dequantize(int row, Span<float> destination) => Weight.Dequantize(row, destination);

    public void Dispose() => Weight.Dispose();
}
