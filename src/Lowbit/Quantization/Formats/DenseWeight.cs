using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>An unquantized weight [N, K] in F32, BF16 or F16, row-major (Hugging Face's
/// out_features × in_features), usually a view into a memory-mapped checkpoint.</summary>
public sealed class DenseWeight : IWeight
{
    public DenseWeight(Tensor tensor)
    {
        if (tensor.Rank != 2)
            throw new ArgumentException($"A dense weight is 2-D; got {tensor}.", nameof(tensor));
        if (tensor.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new NotSupportedException($"A dense weight is F32, BF16 or F16; got {tensor.DType}.");
        Tensor = tensor;
    }

    public Tensor Tensor { get; }
    public int OutFeatures => Tensor.Shape[0];
    public int InFeatures => Tensor.Shape[1];
    public string FormatName => Tensor.DType.ToString().ToLowerInvariant();
    public long ByteLength => Tensor.ByteLength;

    public void Dispose() => Tensor.Dispose();
}
