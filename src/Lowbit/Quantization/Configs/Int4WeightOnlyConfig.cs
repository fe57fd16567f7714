namespace Lowbit.Quantization.Configs;

/// <summary>int4 weight-only, asymmetric uint4 per group of <see cref="GroupSize"/> along K with float zero
/// points (torchao's Int4WeightOnlyConfig, tinygemm semantics): the <see cref="Formats.Int4GroupedWeight"/>
/// format. A layer whose K is not a multiple of the group size is left unquantized, as torchao does.</summary>
public sealed record Int4WeightOnlyConfig(int GroupSize = 128) : IQuantConfig
{
    public int GroupSize { get; } = GroupSize is 32 or 64 or 128 or 256 ? GroupSize
        : throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize, "int4wo: use 32, 64, 128 or 256");

    public string ShortName => $"int4wo-{GroupSize}";
}
