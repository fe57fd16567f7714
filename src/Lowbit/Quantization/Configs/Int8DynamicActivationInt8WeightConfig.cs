namespace Lowbit.Quantization.Configs;

/// <summary>int8 per-row symmetric weight, activations quantized per token to int8 at run time (torchao's
/// Int8DynamicActivationInt8WeightConfig): the <see cref="Formats.Int8DynamicWeight"/> format. Any K works.</summary>
public sealed record Int8DynamicActivationInt8WeightConfig : IQuantConfig
{
    public string ShortName => Formats.Int8DynamicWeight.Name;
}
