namespace Lowbit.Quantization.Configs;

/// <summary>float8 weight-only, E4M3 with one F32 scale per output row (torchao's Float8WeightOnlyConfig,
/// PerRow): the <see cref="Formats.Float8PerRowWeight"/> format. Activations stay f32. Any K works.</summary>
public sealed record Float8WeightOnlyConfig : IQuantConfig
{
    public string ShortName => Formats.Float8PerRowWeight.Name;
}
