namespace Lowbit.Quantization.Configs;

/// <summary>NF4 weight-only with an absmax scale per block of <see cref="BlockSize"/> elements (torchao's
/// NF4Tensor, QLoRA; default block 64): F32 scales in the <see cref="Formats.Nf4BlockwiseWeight"/> format, or with
/// <see cref="DoubleQuantize"/> the scales themselves int8 per scaler block of <see cref="ScalerBlockSize"/>
/// (torchao's default 256) in the <see cref="Formats.Nf4DoubleQuantWeight"/> format. A layer whose K is not a
/// multiple of the block size is left unquantized. torchao requires the tensor's block count to be a multiple of
/// the scaler block size; here the last scaler block may be shorter (see the format), so no layer is refused for it.</summary>
public sealed record NF4WeightOnlyConfig(int BlockSize = 64, bool DoubleQuantize = false, int ScalerBlockSize = 256) : IQuantConfig
{
    public int BlockSize { get; } = BlockSize is 32 or 64 or 128 or 256 ? BlockSize
        : throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, "nf4: use a block size of 32, 64, 128 or 256");

    public int ScalerBlockSize { get; } = ScalerBlockSize > 0 ? ScalerBlockSize
        : throw new ArgumentOutOfRangeException(nameof(ScalerBlockSize), ScalerBlockSize, "nf4-dq: the scaler block size (block scales per int8 factor) must be positive");

    /// <summary>The format name ("nf4", "nf4-dq-128"), with "-sS" when the scaler block is not 256.</summary>
    public string ShortName => !DoubleQuantize ? Formats.Nf4BlockwiseWeight.NameOf(BlockSize)
        : ScalerBlockSize == Primitives.Nf4.DefaultScalerBlockSize ? Formats.Nf4DoubleQuantWeight.NameOf(BlockSize)
        : $"{Formats.Nf4DoubleQuantWeight.NameOf(BlockSize)}-s{ScalerBlockSize}";
}
