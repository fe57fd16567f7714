namespace Lowbit.Quantization.Configs;

/// <summary>int8 weight-only, symmetric per output row (torchao's Int8WeightOnlyConfig): the
/// <see cref="Formats.Int8PerRowWeight"/> format. Any K works.</summary>
public sealed record Int8WeightOnlyConfig : IQuantConfig
{
    public string ShortName => Formats.Int8PerRowWeight.Name;
}
