namespace Lowbit.Quantization.Configs;

/// <summary>NF4 weight-only with an absmax F32 scale per block of <see cref="BlockSize"/> elements (torchao's
/// NF4Tensor, QLoRA; default block 64): the <see cref="Formats.Nf4BlockwiseWeight"/> format. A layer whose K is
/// not a multiple of the block size is left unquantized.</summary>
public sealed record NF4WeightOnlyConfig(int BlockSize = 64) : IQuantConfig
{
    public int BlockSize { get; } = BlockSize is 32 or 64 or 128 or 256 ? BlockSize
        : throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, "nf4: use a block size of 32, 64, 128 or 256");

    public string ShortName => Formats.Nf4BlockwiseWeight.NameOf(BlockSize);
}
