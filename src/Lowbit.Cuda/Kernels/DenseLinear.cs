using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// y[r, n] = Σ_k x[r, k]·W[n, k] for a dense weight W [N, K] in F32, BF16 or F16 (row-major, as 32-bit
/// words), x and y F32.
/// GEMV (one token): one warp a row, four rows a group of 128 threads; each lane reads 16 bytes of W at a
/// time (<c>ld.global.v4</c>: 8 bf16/f16 or 4 f32) with the matching x as 16-byte float vectors, then a
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
    private const int Tile = 16;
    private readonly int _rowsPerGroup;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<Uint4>, ArrayView<Float4>, ArrayView<float>, int, int, SpecializedValue<int>> _gemv;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<float>, ArrayView<float>, int, int, SpecializedValue<int>> _gemvScalar;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<uint>, ArrayView<float>, int, int, int, SpecializedValue<int>> _gemm;

    public DenseLinear(Accelerator accelerator)
    {
        _rowsPerGroup = GemvGroupSize / accelerator.WarpSize;
        _gemv = accelerator.LoadKernel<ArrayView<Uint4>, ArrayView<Float4>, ArrayView<float>, int, int, SpecializedValue<int>>(Gemv);
        _gemvScalar = accelerator.LoadKernel<ArrayView<uint>, ArrayView<float>, ArrayView<float>, int, int, SpecializedValue<int>>(GemvScalar);
        _gemm = accelerator.LoadKernel<ArrayView<float>, ArrayView<uint>, ArrayView<float>, int, int, int, SpecializedValue<int>>(Gemm);
    }

    /// <summary>True when <see cref="Gemv"/>'s 16-byte loads fit this K and x's address.</summary>
    public static bool VectorLoadsFit(int k, int dtype, long xByteOffset) =>
        k % DenseElements.PerVector(dtype) == 0 && xByteOffset % 16 == 0;

    /// <param name="x">[m, k].</param>
    /// <param name="w">[n, k] as 32-bit words.</param>
    /// <param name="y">[m, n].</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> x, ArrayView<uint> w, ArrayView<float> y, int m, int n, int k, int dtype, bool vectorLoads)
    {
        var spec = SpecializedValue.New(dtype);
        if (m > 1)
        {
            int tiles = (m + Tile - 1) / Tile * ((n + Tile - 1) / Tile);
            _gemm(stream, new KernelConfig(tiles, Tile * Tile), x, w, y, m, n, k, spec);
            return;
        }
        var config = new KernelConfig((n + _rowsPerGroup - 1) / _rowsPerGroup, GemvGroupSize);
        if (vectorLoads)
            _gemv(stream, config, w.Cast<Uint4>(), x.Cast<Float4>(), y, n, k, spec);
        else
            _gemvScalar(stream, config, w, x, y, n, k, spec);
    }

    private static void Gemv(ArrayView<Uint4> w, ArrayView<Float4> x, ArrayView<float> y, int n, int k, SpecializedValue<int> dtype)
    {
        int row = Grid.IdxX * (Group.DimX / Warp.WarpSize) + Warp.WarpIdx;
        if (row >= n)
            return;
        int code = dtype.Value;
        int vectors = k / DenseElements.PerVector(code);
        long start = (long)row * vectors;
        const int stride = 32; // Warp.WarpSize on every NVIDIA GPU (and in the CPU accelerator the tests use)
        float acc = 0f;
        int v = Warp.LaneIdx;
        // Four independent 16-byte loads in flight a lane: rows of a small matrix (K/V at N=1024) are too few
        // warps to cover HBM latency with one load each.
        for (; v + (3 * stride) < vectors; v += 4 * stride)
        {
            Uint4 a = w[start + v], b = w[start + v + stride], c = w[start + v + (2 * stride)], d = w[start + v + (3 * stride)];
            acc += Dot(a, x, v, code) + Dot(b, x, v + stride, code) + Dot(c, x, v + (2 * stride), code) + Dot(d, x, v + (3 * stride), code);
        }
        for (; v < vectors; v += stride)
            acc += Dot(w[start + v], x, v, code);
        acc = BlockReduce.WarpSum(acc);
        if (Warp.LaneIdx == 0)
            y[row] = acc;
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
