using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>Sixteen consecutive floats of x, loaded as four 16-byte vectors and kept in registers: the x side
/// of one 16-byte weight vector of a byte format (16 weights) or of half an int4 chunk.</summary>
public struct X16
{
    public Float4 A, B, C, D;

    /// <summary>x[16v, 16v + 16) from a 16-byte aligned x.</summary>
    public static X16 Load(ArrayView<Float4> x, long v) => new()
    {
        A = x[4 * v],
        B = x[4 * v + 1],
        C = x[4 * v + 2],
        D = x[4 * v + 3],
    };

    /// <summary>x[16v, 16v + 16) with the elements at or past <paramref name="k"/> read as 0 (the last,
    /// partial vector of a row padded to 16 bytes).</summary>
    public static X16 LoadTail(ArrayView<float> x, long v, int k) => new()
    {
        A = Tail4(x, 16 * v, k),
        B = Tail4(x, 16 * v + 4, k),
        C = Tail4(x, 16 * v + 8, k),
        D = Tail4(x, 16 * v + 12, k),
    };

    public readonly float Sum() => A.X + A.Y + A.Z + A.W + B.X + B.Y + B.Z + B.W + C.X + C.Y + C.Z + C.W + D.X + D.Y + D.Z + D.W;

    private static Float4 Tail4(ArrayView<float> x, long i, int k) => new()
    {
        X = i < k ? x[i] : 0f,
        Y = i + 1 < k ? x[i + 1] : 0f,
        Z = i + 2 < k ? x[i + 2] : 0f,
        W = i + 3 < k ? x[i + 3] : 0f,
    };
}

/// <summary>Four doubles: one warp's four row sums.</summary>
public struct Double4
{
    public double X, Y, Z, W;
}

/// <summary>
/// How the quantized GEMVs (m = 1) share out the rows of W [N, K]: a warp owns <see cref="RowsPerWarp"/>
/// consecutive rows (a row set), so each x load serves four weight loads; a group of 128 threads holds four
/// warps. When N is small (the down projection's 4096 rows make 1024 row sets, 8 warps an SM on an H100),
/// S = 2^<see cref="SplitShift"/> warps share a row set, as many as still fit one wave of resident warps
/// (the kernel's occupancy), each taking every S-th 512-byte stripe of the row; their sums meet in shared
/// memory (S a power of two: the kernels shift and mask, no division). Lanes accumulate in f32; the warp and
/// split reductions run in f64, so int8dq's integer sums stay exact (each lane's f32 sum is an exact integer
/// below 2^24).
/// Rows past N are read as row N − 1 (so every thread reaches the barrier) and not stored.
/// </summary>
public static class GemvRows
{
    public const int RowsPerWarp = 4;
    public const int GroupSize = 128;
    public const int WarpsPerGroup = GroupSize / 32;

    /// <summary>The fewest warps a split aims for (16 an SM on an H100's 132 SMs), also where the occupancy
    /// estimate is small (ILGPU's CPU accelerator: the tests still reach every split).</summary>
    private const int MinTargetWarps = 2048;

    /// <summary>Doubles of shared memory a GEMV group needs for the split-K sums.</summary>
    public const int SharedDoubles = WarpsPerGroup * RowsPerWarp;

    /// <summary>Warps of a loaded GEMV kernel the device holds at once (its occupancy estimate, which counts the
    /// kernel's registers), at least <see cref="MinTargetWarps"/>: what a split may fill.</summary>
    public static int TargetWarps(Accelerator accelerator, Delegate launcher) =>
        launcher.TryGetKernel(out var kernel)
            ? Math.Max(MinTargetWarps, accelerator.EstimateMaxActiveGroupsPerMultiprocessor(kernel, GroupSize, 0) * accelerator.NumMultiprocessors * WarpsPerGroup)
            : MinTargetWarps;

    /// <summary>log2 of the warps a row set is split over (S = 1, 2 or 4): S doubles while the doubled grid still
    /// fits <paramref name="targetWarps"/> (one wave: a second, partial wave would leave SMs idle) and each warp
    /// keeps at least two 512-byte stripes of the row.</summary>
    /// <param name="vectors">16-byte vectors in a row.</param>
    public static int SplitShift(int n, int vectors, int targetWarps)
    {
        int rowSets = (n + RowsPerWarp - 1) / RowsPerWarp, shift = 0;
        while ((1 << shift) < WarpsPerGroup && (long)rowSets << (shift + 1) <= targetWarps && vectors >= 2 * 32 * (2 << shift))
            shift++;
        return shift;
    }

    /// <summary>The launch for <paramref name="n"/> rows, each row set split 2^<paramref name="splitShift"/> ways.</summary>
    public static KernelConfig Config(int n, int splitShift)
    {
        int rowSets = (n + RowsPerWarp - 1) / RowsPerWarp, setsPerGroup = WarpsPerGroup >> splitShift;
        return new KernelConfig((rowSets + setsPerGroup - 1) / setsPerGroup, GroupSize);
    }

    /// <summary>This warp's first row and its stripe (0 .. 2^splitShift − 1).</summary>
    public static (int Row, int Slice) Map(int splitShift)
    {
        int warp = Warp.WarpIdx;
        int set = Grid.IdxX * (WarpsPerGroup >> splitShift) + (warp >> splitShift);
        return (set * RowsPerWarp, warp & ((1 << splitShift) - 1));
    }

    /// <summary>Row <paramref name="row"/> clamped to the last one.</summary>
    public static int Clamp(int row, int n) => row < n ? row : n - 1;

    /// <summary>The four rows' totals over the warp and its split: valid in lane 0 of slice 0's warp.
    /// Every thread of the group must call it.</summary>
    public static Double4 Reduce(float a0, float a1, float a2, float a3, int splitShift, ArrayView<double> shared)
    {
        var t = new Double4
        {
            X = BlockReduce.WarpSum((double)a0),
            Y = BlockReduce.WarpSum((double)a1),
            Z = BlockReduce.WarpSum((double)a2),
            W = BlockReduce.WarpSum((double)a3),
        };
        if (splitShift == 0)
            return t;
        int warp = Warp.WarpIdx;
        if (Warp.LaneIdx == 0)
        {
            shared[RowsPerWarp * warp] = t.X;
            shared[RowsPerWarp * warp + 1] = t.Y;
            shared[RowsPerWarp * warp + 2] = t.Z;
            shared[RowsPerWarp * warp + 3] = t.W;
        }
        Group.Barrier();
        for (int s = 1; s < 1 << splitShift; s++)
        {
            // Slice 0's warp adds its neighbours'; the other warps' sums are not used.
            int other = Math.Min(warp + s, WarpsPerGroup - 1);
            t.X += shared[RowsPerWarp * other];
            t.Y += shared[RowsPerWarp * other + 1];
            t.Z += shared[RowsPerWarp * other + 2];
            t.W += shared[RowsPerWarp * other + 3];
        }
        return t;
    }

    /// <summary>y[row + i] = total i · scale(row + i) for the rows below <paramref name="n"/>, from lane 0 of
    /// slice 0 (after <see cref="Reduce"/>).</summary>
    public static void Store(ArrayView<float> y, int row, int n, int slice, Double4 t, Float4 scale)
    {
        if (Warp.LaneIdx != 0 || slice != 0)
            return;
        if (row < n)
            y[row] = (float)t.X * scale.X;
        if (row + 1 < n)
            y[row + 1] = (float)t.Y * scale.Y;
        if (row + 2 < n)
            y[row + 2] = (float)t.Z * scale.Z;
        if (row + 3 < n)
            y[row + 3] = (float)t.W * scale.W;
    }
}
