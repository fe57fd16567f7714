using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// y[r, n] = Σ_k x[r, k]·W[n, k] for a dense weight W [N, K] in F32, BF16 or F16 (row-major, as 32-bit
/// words), x and y F32.
/// GEMV (one token): one warp a row, four rows a group of 128 threads (or, with <see cref="Split"/>, two or four
/// warps on one row); each lane reads 16 bytes of W at a time (<c>ld.global.v4</c>:
/// 8 bf16/f16 or 4 f32), four loads in flight, with the matching x as 16-byte float vectors, then a
/// shuffle reduction. Needs K·size a multiple of 16 bytes (rows start aligned); otherwise the scalar GEMV
/// reads one element a lane.
/// Decode N=14336, K=4096 bf16: 117.4 MB of W + 16 KB x, 117 MFLOP (1 FLOP/byte, memory-bound).
/// Floor at 2.97 TB/s: 39.5 us. Measured: see docs/gpu.md (lowbit selftest --device cuda --bench).
/// GEMM (prefill, m &gt; 1): 16×16 output tiles, K in steps of 16 through shared memory, one output a thread;
/// a first version (W is read m/16 times; tensor-core PTX kernels replace it).
/// </summary>
public sealed class DenseLinear
{
    public const int GemvGroupSize = 128;

    /// <summary>Warps sharing each row (1, 2 or 4; 0 = 1). One warp a row is as fast or faster at every Llama-3-8B
    /// decode shape on the H100 (<c>lowbit selftest --bench</c>'s sweep, 2026-11-25: 4096×4096 15.3 us against
    /// 20.7 us with four warps, 6144×4096 24.0 against 28.3, 4096×14336 46.8 against 49.0); the split stays for
    /// the checks and the sweep.</summary>
    public int Split { get; set; }
    private const int Tile = 16;
    private readonly int _rowsPerGroup;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<Float4>, ArrayView<Uint4>, ArrayView<Uint4>, ArrayView<Uint4>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemvLaunch, SpecializedValue<int>, SpecializedValue<int>> _gemv;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<Float4>, ArrayView<Uint4>, ArrayView<Uint4>, ArrayView<float>, GemvLaunch, SpecializedValue<int>, SpecializedValue<int>> _gated;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<float>, ArrayView<float>, int, int, SpecializedValue<int>> _gemvScalar;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<uint>, ArrayView<float>, int, int, int, SpecializedValue<int>> _gemm;

    public DenseLinear(Accelerator accelerator)
    {
        _rowsPerGroup = GemvGroupSize / accelerator.WarpSize;
        _gemv = accelerator.LoadKernel<ArrayView<Float4>, ArrayView<Uint4>, ArrayView<Uint4>, ArrayView<Uint4>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemvLaunch, SpecializedValue<int>, SpecializedValue<int>>(Gemv);
        _gated = accelerator.LoadKernel<ArrayView<Float4>, ArrayView<Uint4>, ArrayView<Uint4>, ArrayView<float>, GemvLaunch, SpecializedValue<int>, SpecializedValue<int>>(GatedGemv);
        _gemvScalar = accelerator.LoadKernel<ArrayView<uint>, ArrayView<float>, ArrayView<float>, int, int, SpecializedValue<int>>(GemvScalar);
        _gemm = accelerator.LoadKernel<ArrayView<float>, ArrayView<uint>, ArrayView<float>, int, int, int, SpecializedValue<int>>(Gemm);
    }

    /// <summary>True when <see cref="Gemv"/>'s 16-byte loads fit this K and x's address.</summary>
    public static bool VectorLoadsFit(int k, int dtype, long xByteOffset) =>
        k % DenseElements.PerVector(dtype) == 0 && xByteOffset % 16 == 0;

    /// <param name="x">[m, k].</param>
    /// <param name="w">[n, k] as 32-bit words.</param>
    /// <param name="y">[m, n].</param>
    /// <param name="norm">For the vector GEMV: add into a residual and norm it instead of writing y (off by default).</param>
    /// <param name="input">For the vector GEMV: x's 1/rms still to apply (off by default).</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> x, ArrayView<uint> w, ArrayView<float> y, int m, int n, int k, int dtype, bool vectorLoads,
        ResidualNorm norm = default, InputScale input = default)
    {
        if ((norm.On != 0 || input.On != 0) && (m > 1 || !vectorLoads))
            throw new ArgumentException("Only the vector GEMV adds into a residual or scales its input.", nameof(norm));
        var spec = SpecializedValue.New(dtype);
        if (m > 1)
        {
            int tiles = (m + Tile - 1) / Tile * ((n + Tile - 1) / Tile);
            _gemm(stream, new KernelConfig(tiles, Tile * Tile), x, w, y, m, n, k, spec);
            return;
        }
        if (vectorLoads)
        {
            var rows = Rows(n, 0, 0, k);
            rows.Norm = norm;
            rows.Input = input;
            _gemv(stream, Config(rows), x.Cast<Float4>(), w.Cast<Uint4>(), w.Cast<Uint4>(), w.Cast<Uint4>(), y, y, y, rows, spec, rows.Fold);
        }
        else
        {
            _gemvScalar(stream, new KernelConfig((n + _rowsPerGroup - 1) / _rowsPerGroup, GemvGroupSize), w, x, y, n, k, spec);
        }
    }

    /// <summary>Three GEMVs of one x (q, k, v) in one launch: W0 [n0, k] into y0, W1 [n1, k] into y1, W2 into y2.
    /// Needs 16-byte loads (<see cref="VectorLoadsFit"/>).</summary>
    public void LaunchFused(AcceleratorStream stream, ArrayView<float> x, InputScale input, int k, int dtype,
        ArrayView<uint> w0, ArrayView<float> y0, int n0, ArrayView<uint> w1, ArrayView<float> y1, int n1, ArrayView<uint> w2, ArrayView<float> y2, int n2)
    {
        var rows = Rows(n0, n1, n2, k);
        rows.Input = input;
        _gemv(stream, Config(rows), x.Cast<Float4>(), w0.Cast<Uint4>(), w1.Cast<Uint4>(), w2.Cast<Uint4>(), y0, y1, y2, rows, SpecializedValue.New(dtype), rows.Fold);
    }

    /// <summary>y = silu(x·Wgᵀ) ⊙ (x·Wuᵀ), Wg and Wu [n, k]: a warp takes row i of both (the SiLU-gated MLP's first
    /// half in one launch, no gate and up round trip through memory). Needs 16-byte loads.</summary>
    public void LaunchGated(AcceleratorStream stream, ArrayView<float> x, InputScale input, ArrayView<uint> gate, ArrayView<uint> up, ArrayView<float> y, int n, int k, int dtype)
    {
        var rows = Rows(n, 0, 0, k);
        rows.Input = input;
        _gated(stream, Config(rows), x.Cast<Float4>(), gate.Cast<Uint4>(), up.Cast<Uint4>(), y, rows, SpecializedValue.New(dtype), rows.Fold);
    }

    /// <summary>The launch's rows; with <see cref="Split"/> warps a row, they share its K and add their sums through
    /// shared memory.</summary>
    private GemvLaunch Rows(int n0, int n1, int n2, int k)
    {
        int n = n0 + n1 + n2;
        return new GemvLaunch { N0 = n0, N1 = n1, N2 = n2, K = k, WarpsPerRow = Split != 0 ? Split : 1 };
    }

    private KernelConfig Config(GemvLaunch rows)
    {
        int perGroup = _rowsPerGroup / rows.WarpsPerRow, n = rows.N0 + rows.N1 + rows.N2;
        return new KernelConfig((n + perGroup - 1) / perGroup, GemvGroupSize);
    }

    private static void Gemv(ArrayView<Float4> x, ArrayView<Uint4> w0, ArrayView<Uint4> w1, ArrayView<Uint4> w2,
        ArrayView<float> y0, ArrayView<float> y1, ArrayView<float> y2, GemvLaunch rows, SpecializedValue<int> dtype, SpecializedValue<int> fold)
    {
        var partial = SharedMemory.Allocate<float>(32);
        double slot = fold.Value != 0 ? rows.Input.Load() : 0.0;
        var (row, part) = rows.Locate();
        int n = rows.N0 + rows.N1 + rows.N2;
        // Which weight this row belongs to, and its row there.
        var w = w0;
        var y = y0;
        int r = row;
        if (r >= rows.N0)
        {
            r -= rows.N0;
            w = w1;
            y = y1;
            if (r >= rows.N1)
            {
                r -= rows.N1;
                w = w2;
                y = y2;
            }
        }
        // A producer's residual and norm weight for its row, loaded now so the epilogue does not wait on them.
        bool producer = fold.Value != 0 && rows.Norm.On != 0 && row < n;
        float residual = producer ? rows.Norm.Residual[r] : 0f, g = producer ? rows.Norm.Weight[r] : 0f;
        float acc = row < n ? RowDot(w, r, part, rows, x, dtype.Value) : 0f;
        acc = rows.Reduce(acc, partial) * (fold.Value != 0 ? rows.Input.Factor(slot) : 1f);
        bool writes = row < n && part == 0 && Warp.LaneIdx == 0;
        if (fold.Value == 0 || rows.Norm.On == 0)
        {
            if (writes)
                y[r] = acc;
            return;
        }
        rows.Norm.Finish(writes ? rows.Norm.Add(r, acc, residual, g) : 0f, partial);
    }

    private static void GatedGemv(ArrayView<Float4> x, ArrayView<Uint4> gate, ArrayView<Uint4> up, ArrayView<float> y, GemvLaunch rows, SpecializedValue<int> dtype,
        SpecializedValue<int> fold)
    {
        var partial = SharedMemory.Allocate<float>(32);
        double slot = fold.Value != 0 ? rows.Input.Load() : 0.0;
        var (row, part) = rows.Locate();
        bool active = row < rows.N0;
        float g = active ? RowDot(gate, row, part, rows, x, dtype.Value) : 0f;
        float u = active ? RowDot(up, row, part, rows, x, dtype.Value) : 0f;
        float factor = fold.Value != 0 ? rows.Input.Factor(slot) : 1f;
        g = rows.Reduce(g, partial) * factor;
        u = rows.Reduce(u, partial) * factor;
        if (active && part == 0 && Warp.LaneIdx == 0)
            y[row] = g / (1f + FastMath.Exp(-g)) * u;
    }

    /// <summary>This warp's share of row r's dot product: vectors part·32 + lane, then every 32·warpsPerRow,
    /// four independent 16-byte loads in flight a lane.</summary>
    private static float RowDot(ArrayView<Uint4> w, int r, int part, GemvLaunch rows, ArrayView<Float4> x, int code)
    {
        int vectors = rows.K / DenseElements.PerVector(code);
        long start = (long)r * vectors;
        int stride = Warp.WarpSize * rows.WarpsPerRow;
        int v = (part * Warp.WarpSize) + Warp.LaneIdx;
        float acc = 0f;
        for (; v + (3 * stride) < vectors; v += 4 * stride)
        {
            Uint4 a = w[start + v], b = w[start + v + stride], c = w[start + v + (2 * stride)], d = w[start + v + (3 * stride)];
            acc += Dot(a, x, v, code) + Dot(b, x, v + stride, code) + Dot(c, x, v + (2 * stride), code) + Dot(d, x, v + (3 * stride), code);
        }
        for (; v < vectors; v += stride)
            acc += Dot(w[start + v], x, v, code);
        return acc;
    }

    /// <summary>Vector v of a row (16 bytes: 4 f32 or 8 bf16/f16 weights) times the matching x.</summary>
    private static float Dot(Uint4 q, ArrayView<Float4> x, int v, int code)
    {
        if (code == DenseElements.F32)
        {
            Float4 a = x[v];
            return (Interop.IntAsFloat(q.X) * a.X) + (Interop.IntAsFloat(q.Y) * a.Y) + (Interop.IntAsFloat(q.Z) * a.Z) + (Interop.IntAsFloat(q.W) * a.W);
        }
        Float4 lo = x[2 * v], hi = x[(2 * v) + 1];
        return (DenseElements.Low(q.X, code) * lo.X) + (DenseElements.High(q.X, code) * lo.Y)
             + (DenseElements.Low(q.Y, code) * lo.Z) + (DenseElements.High(q.Y, code) * lo.W)
             + (DenseElements.Low(q.Z, code) * hi.X) + (DenseElements.High(q.Z, code) * hi.Y)
             + (DenseElements.Low(q.W, code) * hi.Z) + (DenseElements.High(q.W, code) * hi.W);
    }

    private static void GemvScalar(ArrayView<uint> w, ArrayView<float> x, ArrayView<float> y, int n, int k, SpecializedValue<int> dtype)
    {
        int row = Grid.IdxX * (Group.DimX / Warp.WarpSize) + Warp.WarpIdx;
        if (row >= n)
            return;
        long start = (long)row * k;
        float acc = 0f;
        for (int c = Warp.LaneIdx; c < k; c += Warp.WarpSize)
            acc += DenseElements.Load(w, start + c, dtype.Value) * x[c];
        acc = BlockReduce.WarpSum(acc);
        if (Warp.LaneIdx == 0)
            y[row] = acc;
    }

    private static void Gemm(ArrayView<float> x, ArrayView<uint> w, ArrayView<float> y, int m, int n, int k, SpecializedValue<int> dtype)
    {
        // Rows padded to 17 so a column walk hits 16 different banks.
        var xs = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        var ws = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        int tx = Group.IdxX % Tile, ty = Group.IdxX / Tile;
        int tilesN = (n + Tile - 1) / Tile;
        int bm = Grid.IdxX / tilesN, bn = Grid.IdxX - bm * tilesN;
        int row = bm * Tile + ty, col = bn * Tile + tx, wRow = bn * Tile + ty;
        float acc = 0f;
        for (int k0 = 0; k0 < k; k0 += Tile)
        {
            int kk = k0 + tx;
            xs[ty * (Tile + 1) + tx] = row < m && kk < k ? x[(long)row * k + kk] : 0f;
            ws[ty * (Tile + 1) + tx] = wRow < n && kk < k ? DenseElements.Load(w, (long)wRow * k + kk, dtype.Value) : 0f;
            Group.Barrier();
            for (int j = 0; j < Tile; j++)
                acc += xs[ty * (Tile + 1) + j] * ws[tx * (Tile + 1) + j];
            Group.Barrier();
        }
        if (row < m && col < n)
            y[(long)row * n + col] = acc;
    }
}

/// <summary>The rows of a GEMV launch: up to three weights' rows one after another (N0, N1, N2), K, and how
/// many warps of a 128-thread group share a row.</summary>
public struct GemvLaunch
{
    public int N0, N1, N2, K, WarpsPerRow;

    /// <summary>One weight whose rows add into a residual that is then normed (instead of writing y).</summary>
    public ResidualNorm Norm;

    /// <summary>x's 1/rms, when x is a <see cref="ResidualNorm"/>'s output.</summary>
    public InputScale Input;

    /// <summary>The kernel instance (<see cref="ResidualNorm.Fold"/>).</summary>
    public readonly SpecializedValue<int> Fold => ResidualNorm.Fold(Norm, Input);

    /// <summary>This warp's row (over all weights) and its part of the row.</summary>
    public readonly (int Row, int Part) Locate()
    {
        int rowsPerGroup = Group.DimX / Warp.WarpSize / WarpsPerRow;
        int local = Warp.WarpIdx / WarpsPerRow;
        return ((Grid.IdxX * rowsPerGroup) + local, Warp.WarpIdx - (local * WarpsPerRow));
    }

    /// <summary>The row's sum on lane 0 of its first warp: a shuffle reduction, then, when warps share a row,
    /// their sums through shared memory (every thread of the group must call this).</summary>
    public readonly float Reduce(float acc, ArrayView<float> partial)
    {
        acc = BlockReduce.WarpSum(acc);
        if (WarpsPerRow == 1)
            return acc;
        if (Warp.LaneIdx == 0)
            partial[Warp.WarpIdx] = acc;
        Group.Barrier();
        float sum = 0f;
        int first = Warp.WarpIdx - (Warp.WarpIdx % WarpsPerRow);
        for (int j = 0; j < WarpsPerRow; j++)
            sum += partial[first + j];
        Group.Barrier(); // the next Reduce may overwrite partial only once every warp has read it
        return sum;
    }
}
