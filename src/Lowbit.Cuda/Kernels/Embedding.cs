using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// destination[r, c] = table[tokens[r], c] widened to F32; table [vocab, dim] in F32, BF16 or F16.
/// One thread an element. Decode: one row of dim elements (8 KB at dim 4096 bf16): launch-bound.
/// </summary>
public sealed class Embedding
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<int>, ArrayView<uint>, ArrayView<float>, int, SpecializedValue<int>> _kernel;

    public Embedding(Accelerator accelerator) =>
        _kernel = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<int>, ArrayView<uint>, ArrayView<float>, int, SpecializedValue<int>>(Kernel);

    /// <param name="tokens">[rows] token ids.</param>
    /// <param name="table">[vocab, dim] as 32-bit words.</param>
    /// <param name="destination">[rows, dim].</param>
    public void Launch(AcceleratorStream stream, ArrayView<int> tokens, ArrayView<uint> table, ArrayView<float> destination, int rows, int dim, int dtype) =>
        _kernel(stream, rows * dim, tokens, table, destination, dim, SpecializedValue.New(dtype));

    private static void Kernel(Index1D i, ArrayView<int> tokens, ArrayView<uint> table, ArrayView<float> destination, int dim, SpecializedValue<int> dtype)
    {
        int t = Uniformity.Divergent(i); // a bf16 table's element picks the low or high half of a word
        int r = t / dim, c = t - r * dim;
        destination[t] = DenseElements.Load(table, (long)tokens[r] * dim + c, dtype.Value);
    }
}
