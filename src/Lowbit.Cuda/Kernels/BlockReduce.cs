using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>Sums and maxima over a warp (<c>shfl.sync.down</c>) and over a whole group (one value a warp
/// through shared memory). Every thread of the group must call the group reductions, and every thread gets
/// the result. <c>shared</c> holds one float a warp (allocate 32 in the kernel).</summary>
public static class BlockReduce
{
    /// <summary>The largest power-of-two group size up to <paramref name="most"/> the accelerator runs (tree
    /// reductions over shared memory halve it).</summary>
    public static int PowerOfTwoGroup(ILGPU.Runtime.Accelerator accelerator, int most) =>
        (int)Math.Min(most, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)accelerator.MaxNumThreadsPerGroup + 1) / 2);

    // The warp reductions are written out for a warp of 32 (every NVIDIA GPU, and the CPU accelerator the tests
    // open): ILGPU keeps a loop over Warp.WarpSize as a loop, one shuffle an iteration behind a branch, which left
    // the 16 reductions a decode-attention chunk takes one after another (~6 us a chunk on the H100).

    public static float WarpSum(float v)
    {
        v += Warp.ShuffleDown(v, 16);
        v += Warp.ShuffleDown(v, 8);
        v += Warp.ShuffleDown(v, 4);
        v += Warp.ShuffleDown(v, 2);
        return v + Warp.ShuffleDown(v, 1);
    }

    /// <summary>The warp's sum in every lane (<c>shfl.sync.bfly</c>), for math every lane goes on with.</summary>
    public static float WarpAllSum(float v)
    {
        v += Warp.ShuffleXor(v, 16);
        v += Warp.ShuffleXor(v, 8);
        v += Warp.ShuffleXor(v, 4);
        v += Warp.ShuffleXor(v, 2);
        return v + Warp.ShuffleXor(v, 1);
    }

    public static double WarpAllSum(double v)
    {
        v += Warp.ShuffleXor(v, 16);
        v += Warp.ShuffleXor(v, 8);
        v += Warp.ShuffleXor(v, 4);
        v += Warp.ShuffleXor(v, 2);
        return v + Warp.ShuffleXor(v, 1);
    }

    public static double WarpSum(double v)
    {
        v += Warp.ShuffleDown(v, 16);
        v += Warp.ShuffleDown(v, 8);
        v += Warp.ShuffleDown(v, 4);
        v += Warp.ShuffleDown(v, 2);
        return v + Warp.ShuffleDown(v, 1);
    }

    public static float WarpMax(float v)
    {
        v = MathF.Max(v, Warp.ShuffleDown(v, 16));
        v = MathF.Max(v, Warp.ShuffleDown(v, 8));
        v = MathF.Max(v, Warp.ShuffleDown(v, 4));
        v = MathF.Max(v, Warp.ShuffleDown(v, 2));
        return MathF.Max(v, Warp.ShuffleDown(v, 1));
    }

    public static float Sum(float v, ArrayView<float> shared)
    {
        v = WarpSum(v);
        if (Warp.LaneIdx == 0)
            shared[Warp.WarpIdx] = v;
        Group.Barrier();
        float total = 0f;
        int warps = (Group.DimX + Warp.WarpSize - 1) / Warp.WarpSize;
        for (int i = 0; i < warps; i++)
            total += shared[i];
        // The next reduction may overwrite shared only once every thread has read it.
        Group.Barrier();
        return total;
    }

    public static float Max(float v, ArrayView<float> shared)
    {
        v = WarpMax(v);
        if (Warp.LaneIdx == 0)
            shared[Warp.WarpIdx] = v;
        Group.Barrier();
        float best = float.NegativeInfinity;
        int warps = (Group.DimX + Warp.WarpSize - 1) / Warp.WarpSize;
        for (int i = 0; i < warps; i++)
            best = MathF.Max(best, shared[i]);
        Group.Barrier();
        return best;
    }
}
