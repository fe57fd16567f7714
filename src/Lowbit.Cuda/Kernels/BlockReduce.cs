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

    public static float WarpSum(float v)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            v += Warp.ShuffleDown(v, offset);
        return v;
    }

    /// <summary>The warp's sum in every lane (<c>shfl.sync.bfly</c>), for math every lane goes on with.</summary>
    public static float WarpAllSum(float v)
    {
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
            v += Warp.ShuffleXor(v, mask);
        return v;
    }

    public static double WarpSum(double v)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            v += Warp.ShuffleDown(v, offset);
        return v;
    }

    public static float WarpMax(float v)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            v = MathF.Max(v, Warp.ShuffleDown(v, offset));
        return v;
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
