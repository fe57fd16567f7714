using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>What a quantized format gives <see cref="QuantizedGemm{TWeights}"/>: its device buffers (fields of
/// the implementing struct, passed to the kernel by value) and how to dequantize a tile of them.</summary>
public interface IWeightTile
{
    /// <summary>Writes W[rowBase + r, k0 + c] dequantized (every scale and zero applied, as the format's
    /// reference Dequantize) to tile[c·Stride + r] for r &lt; TileN, c &lt; TileK, 0 past K; rows past N may
    /// hold anything finite. Called by every thread of the group (each format decides who loads what).</summary>
    void Store(int n, int k, int rowBase, int k0, ArrayView<float> tile);
}

/// <summary>Tile sizes of <see cref="QuantizedGemm{TWeights}"/>.</summary>
public static class QuantizedGemm
{
    public const int TileM = 64, TileN = 64, TileK = 32, GroupSize = 256;

    /// <summary>Floats between two K rows of a shared tile: 64 + 4 keeps rows 16-byte aligned for the
    /// <see cref="Float4"/> reads and moves each row 4 banks.</summary>
    public const int Stride = TileN + 4;
}

/// <summary>
/// y[m, n] = Σ_k x[m, k]·deq(W[n, k]) for m &gt; 1 (prefill), any quantized format through its
/// <see cref="IWeightTile"/>: 64×64 output tiles, K in steps of 32 through shared memory, where the weight
/// tile is dequantized once per step and serves 64 tokens; 256 threads, each 4×4 outputs from two 16-byte
/// shared loads a step of K. No tensor cores yet (a first version: PTX mma kernels replace it).
/// </summary>
public sealed class QuantizedGemm<TWeights>
    where TWeights : struct, IWeightTile
{
    private const int Stride = QuantizedGemm.Stride, TileM = QuantizedGemm.TileM, TileN = QuantizedGemm.TileN, TileK = QuantizedGemm.TileK;
    private readonly Action<AcceleratorStream, KernelConfig, TWeights, ArrayView<float>, ArrayView<float>, int, int, int> _kernel;

    public QuantizedGemm(Accelerator accelerator) =>
        _kernel = accelerator.LoadKernel<TWeights, ArrayView<float>, ArrayView<float>, int, int, int>(Kernel);

    /// <param name="x">[m, k].</param>
    /// <param name="y">[m, n].</param>
    public void Launch(AcceleratorStream stream, TWeights weights, ArrayView<float> x, ArrayView<float> y, int m, int n, int k)
    {
        int tiles = (m + TileM - 1) / TileM * ((n + TileN - 1) / TileN);
        _kernel(stream, new KernelConfig(tiles, QuantizedGemm.GroupSize), weights, x, y, m, n, k);
    }

    private static void Kernel(TWeights weights, ArrayView<float> x, ArrayView<float> y, int m, int n, int k)
    {
        var xs = SharedMemory.Allocate<Float4>(TileK * Stride / 4);
        var ws = SharedMemory.Allocate<Float4>(TileK * Stride / 4);
        var xTile = xs.Cast<float>();
        var wTile = ws.Cast<float>();
        int t = Group.IdxX, tx = t % 16, ty = t / 16;
        int tilesN = (n + TileN - 1) / TileN;
        int bm = Grid.IdxX / tilesN, bn = Grid.IdxX - bm * tilesN;
        int rowBase = bm * TileM, colBase = bn * TileN;
        Float4 c0 = default, c1 = default, c2 = default, c3 = default;
        for (int k0 = 0; k0 < k; k0 += TileK)
        {
            // x: 64 tokens × 32 of K, read along K (coalesced), stored transposed.
            for (int e = t; e < TileM * TileK; e += QuantizedGemm.GroupSize)
            {
                int r = e / TileK, c = e % TileK;
                int row = rowBase + r, col = k0 + c;
                xTile[c * Stride + r] = row < m && col < k ? x[(long)row * k + col] : 0f;
            }
            weights.Store(n, k, colBase, k0, wTile);
            Group.Barrier();
            for (int c = 0; c < TileK; c++)
            {
                Float4 a = xs[c * (Stride / 4) + ty], b = ws[c * (Stride / 4) + tx];
                c0 = Fma(a.X, b, c0);
                c1 = Fma(a.Y, b, c1);
                c2 = Fma(a.Z, b, c2);
                c3 = Fma(a.W, b, c3);
            }
            Group.Barrier();
        }
        int outRow = rowBase + 4 * ty, outCol = colBase + 4 * tx;
        Store(y, outRow, outCol, m, n, c0);
        Store(y, outRow + 1, outCol, m, n, c1);
        Store(y, outRow + 2, outCol, m, n, c2);
        Store(y, outRow + 3, outCol, m, n, c3);
    }

    private static Float4 Fma(float a, Float4 b, Float4 c) => new()
    {
        X = a * b.X + c.X,
        Y = a * b.Y + c.Y,
        Z = a * b.Z + c.Z,
        W = a * b.W + c.W,
    };

    private static void Store(ArrayView<float> y, int row, int col, int m, int n, Float4 v)
    {
        if (row >= m)
            return;
        long at = (long)row * n + col;
        if (col < n)
            y[at] = v.X;
        if (col + 1 < n)
            y[at + 1] = v.Y;
        if (col + 2 < n)
            y[at + 2] = v.Z;
        if (col + 3 < n)
            y[at + 3] = v.W;
    }
}
