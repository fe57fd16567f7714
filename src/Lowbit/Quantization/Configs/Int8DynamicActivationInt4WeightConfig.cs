namespace Lowbit.Quantization.Configs;

/// <summary>int4 symmetric per-group weight, int8 asymmetric per-token activations at run time (torchao's
/// Int8DynamicActivationInt4WeightConfig(group_size), "8da4w"): the <see cref="Formats.Int8DynamicInt4Weight"/>
/// format. A layer whose K is not a multiple of the group size is left unquantized.</summary>
public sealed record Int8DynamicActivationInt4WeightConfig(int GroupSize = 32) : IQuantConfig
{
    public int GroupSize { get; } = GroupSize is 32 or 64 or 128 or 256 ? GroupSize
        : throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize, "8da4w: use 32, 64, 128 or 256");

    public string ShortName => Formats.Int8DynamicInt4Weight.NameOf(GroupSize);
}
