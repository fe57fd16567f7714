namespace Lowbit.Quantization.Configs;

/// <summary>uintB weight-only, asymmetric per group of <see cref="GroupSize"/> with integer zero points (torchao's
/// UIntXWeightOnlyConfig(torch.uintB, group_size)): the <see cref="Formats.UIntXGroupedWeight"/> format. A layer
/// whose K is not a multiple of the group size is left unquantized.</summary>
public sealed record UIntXWeightOnlyConfig(int Bits, int GroupSize = 64) : IQuantConfig
{
    public int Bits { get; } = Bits is >= 1 and <= 7 ? Bits
        : throw new ArgumentOutOfRangeException(nameof(Bits), Bits, "uintx: use 1 to 7 bits (8 bits is int8wo's job)");

    public int GroupSize { get; } = GroupSize is 32 or 64 or 128 or 256 ? GroupSize
        : throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize, "uintx: use a group size of 32, 64, 128 or 256");

    public string ShortName => Formats.UIntXGroupedWeight.NameOf(Bits, GroupSize);
}
