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
    /// <param name="rowSets">Warps' worth of rows (<see cref="GemvSources{TScale}.RowSets"/>).</param>
    /// <param name="vectors">16-byte vectors in a row.</param>
    public static int SplitShift(int rowSets, int vectors, int targetWarps)
    {
        int shift = 0;
        while ((1 << shift) < WarpsPerGroup && (long)rowSets << (shift + 1) <= targetWarps && vectors >= 2 * 32 * (2 << shift))
            shift++;
        return shift;
    }

    /// <summary>The launch for <paramref name="rowSets"/> row sets, each split 2^<paramref name="splitShift"/> ways.</summary>
    public static KernelConfig Config(int rowSets, int splitShift)
    {
        int setsPerGroup = WarpsPerGroup >> splitShift;
        return new KernelConfig((rowSets + setsPerGroup - 1) / setsPerGroup, GroupSize);
    }

    /// <summary>This warp's row set and its stripe (0 .. 2^splitShift − 1).</summary>
    public static (int Set, int Slice) Map(int splitShift)
    {
        int warp = Warp.WarpIdx;
        return (Grid.IdxX * (WarpsPerGroup >> splitShift) + (warp >> splitShift), warp & ((1 << splitShift) - 1));
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
}

/// <summary>
/// The weights one quantized GEMV launch reads, all of one format and one x: a single matrix (N0 rows into Y0);
/// q, k and v (N0, N1, N2 rows into Y0, Y1, Y2: one launch instead of three, each warp's rows inside one
/// matrix); or, <see cref="Gated"/>, the SiLU-gated MLP's gate (Data0) and up (Data1) paired row by row,
/// y = silu(x·gᵀ)·(x·uᵀ) into Y0 (a warp takes two rows of each: gate and up never go through memory).
/// </summary>
public struct GemvSources<TScale>
    where TScale : unmanaged
{
    public ArrayView<Uint4> Data0, Data1, Data2;
    public ArrayView<TScale> Scales0, Scales1, Scales2;
    public ArrayView<float> Y0, Y1, Y2;
    public int N0, N1, N2;

    /// <summary>1 when Data0 and Data1 are gate and up.</summary>
    public int Gated;

    /// <summary>A single weight whose rows add into a residual that is then normed (instead of writing Y0).</summary>
    public ResidualNorm Norm;

    /// <summary>x's 1/rms, when x is a <see cref="ResidualNorm"/>'s output (the kernels load it at their start and
    /// fold it into <see cref="GemvRowSet{TScale}.Store"/>'s scales).</summary>
    public InputScale Input;

    /// <summary>Warps a row set is split over (1, 2 or 4), or 0 for <see cref="GemvRows.SplitShift"/>'s choice
    /// (read by the launch, for the bench's sweep).</summary>
    public int Split;

    /// <summary>log2 of the warps a row set is split over.</summary>
    public readonly int SplitShift(int vectors, int targetWarps) =>
        Split != 0 ? System.Numerics.BitOperations.Log2((uint)Split) : GemvRows.SplitShift(RowSets, vectors, targetWarps);

    public static GemvSources<TScale> Single(ArrayView<Uint4> data, ArrayView<TScale> scales, ArrayView<float> y, int n) =>
        new() { Data0 = data, Data1 = data, Data2 = data, Scales0 = scales, Scales1 = scales, Scales2 = scales, Y0 = y, Y1 = y, Y2 = y, N0 = n };

    /// <summary>Warps' worth of rows: four rows of one matrix, or two rows of gate and up.</summary>
    public readonly int RowSets => Gated != 0 ? (N0 + 1) / 2 : Sets(N0) + Sets(N1) + Sets(N2);

    private static int Sets(int n) => (n + GemvRows.RowsPerWarp - 1) / GemvRows.RowsPerWarp;

    /// <summary>The four weight rows of row set <paramref name="set"/>: rows R0 and R1 of A, R2 and R3 of B.</summary>
    public readonly GemvRowSet<TScale> Resolve(int set)
    {
        if (Gated != 0)
        {
            int first = 2 * set, r0 = GemvRows.Clamp(first, N0), r1 = GemvRows.Clamp(first + 1, N0);
            return new GemvRowSet<TScale> { A = Data0, B = Data1, ScalesA = Scales0, ScalesB = Scales1, Y = Y0, First = first, N = N0, R0 = r0, R1 = r1, R2 = r0, R3 = r1, Gated = 1 };
        }
        // The grid's last group may hold sets past every row: they go to the last matrix that has rows and read
        // its last row (a matrix with none has no row to clamp to).
        int sets0 = Sets(N0), sets1 = Sets(N1);
        var rows = set < sets0 || N1 == 0
            ? new GemvRowSet<TScale> { A = Data0, ScalesA = Scales0, Y = Y0, First = set * GemvRows.RowsPerWarp, N = N0 }
            : set < sets0 + sets1 || N2 == 0
                ? new GemvRowSet<TScale> { A = Data1, ScalesA = Scales1, Y = Y1, First = (set - sets0) * GemvRows.RowsPerWarp, N = N1 }
                : new GemvRowSet<TScale> { A = Data2, ScalesA = Scales2, Y = Y2, First = (set - sets0 - sets1) * GemvRows.RowsPerWarp, N = N2 };
        rows.B = rows.A;
        rows.ScalesB = rows.ScalesA;
        rows.Norm = Norm;
        rows.R0 = GemvRows.Clamp(rows.First, rows.N);
        rows.R1 = GemvRows.Clamp(rows.First + 1, rows.N);
        rows.R2 = GemvRows.Clamp(rows.First + 2, rows.N);
        rows.R3 = GemvRows.Clamp(rows.First + 3, rows.N);
        return rows;
    }
}

/// <summary>One warp's four weight rows (see <see cref="GemvSources{TScale}.Resolve"/>): R0, R1 in A, R2, R3 in B
/// (rows past N read as row N − 1), and where their results go (Y from row First, N rows).</summary>
public struct GemvRowSet<TScale>
    where TScale : unmanaged
{
    public ArrayView<Uint4> A, B;
    public ArrayView<TScale> ScalesA, ScalesB;
    public ArrayView<float> Y;
    public int R0, R1, R2, R3, First, N, Gated;
    public ResidualNorm Norm;

    /// <summary>Writes the four totals (each times its <paramref name="scale"/>) from lane 0 of slice 0 (after
    /// <see cref="GemvRows.Reduce"/>): y[First + i] for the rows below N, or, gated, silu(gate)·up for rows First
    /// and First + 1, or, with <see cref="Norm"/> on, adds them into the residual and norms it (every thread of
    /// the group must then call this).</summary>
    /// <param name="fold">False in a kernel instance without the norm fold: <see cref="Norm"/> is not read (a constant,
    /// so the code and the views' registers go away).</param>
    public readonly void Store(int slice, Double4 t, Float4 scale, bool fold)
    {
        if (fold && Norm.On != 0)
        {
            Norm.Finish(Warp.LaneIdx == 0 && slice == 0 ? AddRows(t, scale) : 0f, SharedMemory.Allocate<float>(32));
            return;
        }
        if (Warp.LaneIdx != 0 || slice != 0)
            return;
        if (Gated != 0)
        {
            if (First < N)
                Y[First] = Silu((float)t.X * scale.X) * ((float)t.Z * scale.Z);
            if (First + 1 < N)
                Y[First + 1] = Silu((float)t.Y * scale.Y) * ((float)t.W * scale.W);
            return;
        }
        if (First < N)
            Y[First] = (float)t.X * scale.X;
        if (First + 1 < N)
            Y[First + 1] = (float)t.Y * scale.Y;
        if (First + 2 < N)
            Y[First + 2] = (float)t.Z * scale.Z;
        if (First + 3 < N)
            Y[First + 3] = (float)t.W * scale.W;
    }

    /// <summary>The four rows added into the residual (those below N); their squares' sum.</summary>
    private readonly float AddRows(Double4 t, Float4 scale)
    {
        float squares = 0f;
        if (First < N)
            squares += Norm.Add(First, (float)t.X * scale.X);
        if (First + 1 < N)
            squares += Norm.Add(First + 1, (float)t.Y * scale.Y);
        if (First + 2 < N)
            squares += Norm.Add(First + 2, (float)t.Z * scale.Z);
        if (First + 3 < N)
            squares += Norm.Add(First + 3, (float)t.W * scale.W);
        return squares;
    }

    private static float Silu(float g) => g / (1f + FastMath.Exp(-g));
}
