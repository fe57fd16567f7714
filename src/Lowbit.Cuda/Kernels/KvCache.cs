using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// Appends a step's keys and values to the cache: keys[start + r, :] = k[r, :], values likewise, one thread
/// an element of both. A kernel of its own (rather than the K/V projections writing into the cache) so the
/// row can come from the recorded step's position in device memory.
/// </summary>
public sealed class KvCache
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, ArrayView<int>, StepPosition> _store;

    public KvCache(Accelerator accelerator) =>
        _store = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, ArrayView<int>, StepPosition>(StoreKernel);

    /// <param name="k">[rows, columns]; so is v.</param>
    /// <param name="keys">[maxSeq, columns]; so is values.</param>
    public void Store(AcceleratorStream stream, ArrayView<float> k, ArrayView<float> v, ArrayView<float> keys, ArrayView<float> values, int columns,
        ArrayView<int> inputs, StepPosition start) =>
        _store(stream, (int)k.Length, k, v, keys, values, columns, inputs, start);

    private static void StoreKernel(Index1D i, ArrayView<float> k, ArrayView<float> v, ArrayView<float> keys, ArrayView<float> values, int columns,
        ArrayView<int> inputs, StepPosition start)
    {
        long at = (long)start.Resolve(inputs) * columns + i;
        keys[at] = k[i];
        values[at] = v[i];
    }
}
