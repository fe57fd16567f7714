using Lowbit.Quantization.Formats;

namespace Lowbit.Quantization.Configs;

/// <summary>E4M3 weight and E4M3 dynamic activations at one granularity (torchao's
/// Float8DynamicActivationFloat8WeightConfig): the <see cref="Float8DynamicWeight"/> format. Any K works.</summary>
public sealed record Float8DynamicActivationFloat8WeightConfig(Float8Granularity Granularity = Float8Granularity.PerRow) : IQuantConfig
{
    public Float8Granularity Granularity { get; } = Enum.IsDefined(Granularity) ? Granularity
        : throw new ArgumentOutOfRangeException(nameof(Granularity), Granularity, "fp8dq: PerTensor or PerRow");

    public string ShortName => Float8DynamicWeight.NameOf(Granularity);
}
