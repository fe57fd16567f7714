using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// Greedy sampling on the device: the index of the largest logit, the lowest index on a tie (as torch.argmax
/// and Generation/Sampler.ArgMax), so only one int comes back to the host instead of the logits row
/// (513 KB at a 128k vocabulary). One group of up to 1024 threads (a power of two): a strided scan each, then
/// a tree over shared memory.
/// </summary>
public sealed class ArgMax
{
    private const int MaxGroupSize = 1024;
    private readonly int _groupSize;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, int> _kernel;

    public ArgMax(Accelerator accelerator)
    {
        _groupSize = BlockReduce.PowerOfTwoGroup(accelerator, MaxGroupSize);
        _kernel = accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, int>(Kernel);
    }

    /// <param name="logits">[length].</param>
    /// <param name="result">[1]: the index.</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> logits, ArrayView<int> result, int length) =>
        _kernel(stream, new KernelConfig(1, _groupSize), logits, result, length);

    private static void Kernel(ArrayView<float> logits, ArrayView<int> result, int length)
    {
        var values = SharedMemory.Allocate<float>(MaxGroupSize);
        var indices = SharedMemory.Allocate<int>(MaxGroupSize);
        int t = Group.IdxX;
        float best = float.NegativeInfinity;
        int at = int.MaxValue;
        for (int i = t; i < length; i += Group.DimX)
        {
            float v = logits[i];
            if (v > best || at == int.MaxValue)
            {
                best = v;
                at = i;
            }
        }
        values[t] = best;
        indices[t] = at;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half /= 2)
        {
            if (t < half)
            {
                float v = values[t + half];
                int j = indices[t + half];
                if (v > values[t] || (v == values[t] && j < indices[t]))
                {
                    values[t] = v;
                    indices[t] = j;
                }
            }
            Group.Barrier();
        }
        if (t == 0)
            result[0] = indices[0];
    }
}
