namespace Lowbit.Quantization.Formats;

/// <summary>
/// int4wo's weight with int8 dynamic activations ("int4wo-a8-G"): the weight is stored exactly as
/// <see cref="Int4GroupedWeight"/> (same nibble layout, BF16 scale and zero per group of G), and at run time the
/// activations are quantized per block of 32 elements, symmetric over [−127, 127] (torchao's reduced-range per-token
/// scheme applied per block, as llama.cpp's Q8_0 activations are): s = max(max|x[block]| / 127, 1e−5),
/// q_x = clamp(round(x·(1/s)), −127, 127), so y[n] = Σ_k (q_x[k]·s[k / 32])·((q[n, k] − 8)·scale + zero), computed
/// with integer dot products. Not a torchao format: int4wo's numbers change by the activation rounding, so it is a
/// separate type, for CPUs where int4wo's exact f32 kernel is instruction-bound.
/// </summary>
public sealed class Int4GroupedA8Weight : IWeight
{
    public const string Family = "int4wo-a8";

    /// <summary>Elements that share one activation scale.</summary>
    public const int ActivationBlock = 32;

    /// <summary>Wraps the int4wo weight (a loaded checkpoint's tensors, or a fresh quantization).</summary>
    public Int4GroupedA8Weight(Int4GroupedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        Weight = weight;
        FormatName = NameOf(weight.GroupSize);
    }

    /// <summary>The int4wo weight: nibbles [N, K/2], scales and zeros [N, K/G].</summary>
    public Int4GroupedWeight Weight { get; }

    public int OutFeatures => Weight.OutFeatures;
    public int InFeatures => Weight.InFeatures;
    public int GroupSize => Weight.GroupSize;
    public string FormatName { get; }
    public long ByteLength => Weight.ByteLength;

    public static string NameOf(int groupSize) => $"{Family}-{groupSize}";

    /// <summary>Quantizes a dense [N, K] weight as int4wo-G.</summary>
    public static Int4GroupedA8Weight Quantize(Tensors.Tensor dense, int groupSize) => new(Int4GroupedWeight.Quantize(dense, groupSize));

    /// <summary>The weight's reference dequantization (activations are quantized by the kernel).</summary>
    public void Dequantize(int row, Span<float> destination) => Weight.Dequantize(row, destination);

    public void Dispose() => Weight.Dispose();
}
