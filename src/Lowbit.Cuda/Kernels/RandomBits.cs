using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// Fills device words with hashed random bits, then (bits &amp; keep) | set: the masks keep every field of a
/// format in its valid range (a scale's exponent pinned small and positive, an E4M3 exponent below the NaN
/// codes). For benchmarks that build a model's weights on the GPU with no host copy
/// (<see cref="CudaBackend.RandomWeight"/>). Word i's bits are murmur3's finalizer of (i, seed): the same
/// buffer for the same seed on every device.
/// </summary>
public sealed class RandomBits
{
    private const int MaxGroups = 1024, GroupSize = 256;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<uint>, uint, uint, uint> _kernel;

    public RandomBits(Accelerator accelerator) =>
        _kernel = accelerator.LoadKernel<ArrayView<uint>, uint, uint, uint>(Kernel);

    public void Launch(AcceleratorStream stream, ArrayView<uint> words, uint seed, uint keep, uint set) =>
        _kernel(stream, new KernelConfig((int)Math.Min(MaxGroups, (words.Length + GroupSize - 1) / GroupSize), GroupSize), words, seed, keep, set);

    private static void Kernel(ArrayView<uint> words, uint seed, uint keep, uint set)
    {
        long stride = (long)Grid.DimX * GroupSize;
        for (long i = Grid.IdxX * GroupSize + Group.IdxX; i < words.Length; i += stride)
            words[i] = (Hash((uint)i ^ Hash((uint)(i >> 32) + seed)) & keep) | set;
    }

    private static uint Hash(uint h)
    {
        h ^= h >> 16;
        h *= 0x85EBCA6Bu;
        h ^= h >> 13;
        h *= 0xC2B2AE35u;
        h ^= h >> 16;
        return h;
    }
}
