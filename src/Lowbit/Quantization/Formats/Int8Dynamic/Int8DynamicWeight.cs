using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// int8 weight with int8 dynamic activations ("int8dq", torchao's Int8DynamicActivationInt8WeightConfig): the
/// weight is stored exactly as <see cref="Int8PerRowWeight"/> (I8 [N, K] + one scale per row in the weight's
/// dtype, symmetric, scale = max|W[n, :]| / 127.5), and at run time each token's activations are quantized to
/// int8 as well: s_x = max(max|x|, …) / 127 (eps 1e−5), q_x = clamp(round(x / s_x), −127, 127) (torchao's
/// _int8_symm_per_token_reduced_range_quant), so y[n] = s_x·s_w[n]·Σ_k q_x[k]·q_w[n, k]. A separate type from
/// int8wo because the kernel, and so the numbers, differ.
/// </summary>
public sealed class Int8DynamicWeight : IWeight
{
    public const string Name = "int8dq";

    /// <summary>Wraps the int8 weight (a loaded checkpoint's tensors, or a fresh quantization).</summary>
    public Int8DynamicWeight(Int8PerRowWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        Weight = weight;
    }

    /// <summary>The int8 weight: I8 [N, K] and its scales [N].</summary>
    public Int8PerRowWeight Weight { get; }

    public int OutFeatures => Weight.OutFeatures;
    public int InFeatures => Weight.InFeatures;
    public string FormatName => Name;
    public long ByteLength => Weight.ByteLength;

    /// <summary>Quantizes a dense [N, K] weight row by row (as int8wo).</summary>
    public static Int8DynamicWeight Quantize(Tensor dense) => new(Int8PerRowWeight.Quantize(dense));

    /// <summary>The weight's reference dequantization (activations are quantized by the kernel).</summary>
    public void Dequantize(int row, Span<float> destination) => Weight.Dequantize(row, destination);

    public void Dispose() => Weight.Dispose();
}
