using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// Device-side filling of dense F32/BF16 tensors: element i = offset + scale·(2u − 1), u uniform in [0, 1)
/// from a hash of (seed, i) (SplitMix32-style mixing), so a random-weight model of any size is made on the GPU
/// without a host copy (the GPU machine cannot download checkpoints). Two bf16 elements a thread.
/// </summary>
public sealed class Fill
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<uint>, float, float, uint, SpecializedValue<int>> _kernel;

    public Fill(Accelerator accelerator) =>
        _kernel = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<uint>, float, float, uint, SpecializedValue<int>>(Kernel);

    /// <param name="words">The tensor as 32-bit words (an F32 element or two BF16 elements each).</param>
    public void Uniform(AcceleratorStream stream, ArrayView<uint> words, int dtype, float offset, float scale, uint seed) =>
        _kernel(stream, (int)words.Length, words, offset, scale, seed, SpecializedValue.New(dtype));

    private static void Kernel(Index1D i, ArrayView<uint> words, float offset, float scale, uint seed, SpecializedValue<int> dtype)
    {
        if (dtype.Value == DenseElements.F32)
        {
            words[i] = Interop.FloatAsInt(Value(seed, (uint)i, offset, scale));
            return;
        }
        // bf16 by truncation: the values only need to be in range.
        uint low = Interop.FloatAsInt(Value(seed, 2u * (uint)i, offset, scale)) >> 16;
        uint high = Interop.FloatAsInt(Value(seed, (2u * (uint)i) + 1, offset, scale)) & 0xFFFF0000u;
        words[i] = high | low;
    }

    private static float Value(uint seed, uint index, float offset, float scale)
    {
        uint h = index * 0x9E3779B9u + seed;
        h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
        h = (h ^ (h >> 13)) * 0xC2B2AE35u;
        h ^= h >> 16;
        float u = (h >> 8) * (1f / 16777216f);
        return offset + (scale * ((2f * u) - 1f));
    }
}
