using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// Greedy sampling on the device: the index of the largest logit, the lowest index on a tie (as torch.argmax
/// and Generation/Sampler.ArgMax), so only one int comes back to the host instead of the logits row
/// (513 KB at a 128k vocabulary). One group of up to 1024 threads (a power of two): a strided scan each (four
/// loads in flight, <see cref="Strided"/>), then a tree over shared memory.
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
        int t = Group.IdxX, step = Group.DimX, i = t;
        var best = new Best { Value = float.NegativeInfinity, Index = int.MaxValue };
        // A thread's indices in increasing order, so a tie keeps its first (lowest) index.
        for (; i + (3 * step) < length; i += 4 * step)
        {
            var v = Strided.Four(logits, i, step);
            best = best.Take(v.X, i).Take(v.Y, i + step).Take(v.Z, i + (2 * step)).Take(v.W, i + (3 * step));
        }
        for (; i < length; i += step)
            best = best.Take(logits[i], i);
        values[t] = best.Value;
        indices[t] = best.Index;
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

    /// <summary>A thread's largest value so far and its index (int.MaxValue before the first).</summary>
    private struct Best
    {
        public float Value;
        public int Index;

        /// <summary>This, or (v, i) when v is larger or nothing was taken yet.</summary>
        public readonly Best Take(float v, int i) => v > Value || Index == int.MaxValue ? new Best { Value = v, Index = i } : this;
    }
}
