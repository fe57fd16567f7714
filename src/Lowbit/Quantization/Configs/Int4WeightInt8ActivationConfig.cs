namespace Lowbit.Quantization.Configs;

/// <summary>int4wo-G's weight (<see cref="Int4WeightOnlyConfig"/>) with int8 activations quantized per block of 32
/// at run time: the <see cref="Formats.Int4GroupedA8Weight"/> format. Faster than int4wo on CPUs (integer dot
/// products), at the cost of the activation rounding; not a torchao config. A layer whose K is not a multiple of
/// the group size is left unquantized.</summary>
public sealed record Int4WeightInt8ActivationConfig(int GroupSize = 128) : IQuantConfig
{
    public int GroupSize { get; } = GroupSize is 32 or 64 or 128 or 256 ? GroupSize
        : throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize, "int4wo-a8: use 32, 64, 128 or 256");

    public string ShortName => Formats.Int4GroupedA8Weight.NameOf(GroupSize);
}
