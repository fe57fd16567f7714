using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>How a byte-per-weight format with one scale a row (int8wo, fp8wo, int8dq) turns the bytes of a
/// 32-bit word into values before the row scale. Implemented by small structs, so the generic kernels are
/// specialised per format at compile time (one PTX path each, no branch on the format).</summary>
public interface IByteValues
{
    /// <summary>Byte <paramref name="j"/> (0..3, a constant once inlined) of <paramref name="word"/>.</summary>
    float Value(uint word, int j);

    /// <summary>True for int8dq: x holds the token's int8 codes as floats and xScale[0] its scale.</summary>
    bool Codes { get; }
}

/// <summary>
/// The device layout the per-row-scaled byte formats share (<see cref="CudaWeight"/>): Data U8 [N, Kp], Kp = K
/// rounded up to 16 so every row starts 16-byte aligned, byte n·Kp + k = the format's code for W[n, k] (the
/// padding decodes to 0); Scales F32 [N].
/// GEMV (m = 1): y[n] = scale[n]·Σ_k x[k]·v(q[n, k]) (int8dq: y[n] = s_x·scale[n]·Σ_k c_x[k]·q[n, k]).
/// <see cref="GemvRows"/> shares the rows out: four rows a warp, lane l reads 16 bytes of each row at
/// vector l, l + 32, ... (one <c>ld.global.v4</c> a row, a warp reads 512 contiguous bytes of each) and the 16
/// matching x with four 16-byte loads, used by the four rows; each byte becomes a float with the magic
/// number trick of its <see cref="IByteValues"/> and one FMA.
/// Decode 14336×4096: 58.7 MB of codes + 57 KB scales + 16 KB x, 117 MFLOP (2 FLOP/byte, memory-bound).
/// Floor at 2.97 TB/s: 19.8 us. Measured: see docs/gpu.md (lowbit selftest --device cuda --bench).
/// </summary>
public sealed class RowScaledGemv<TValues>
    where TValues : struct, IByteValues
{
    private readonly Action<AcceleratorStream, KernelConfig, GemvSources<float>, ArrayView<float>, ArrayView<float>, int, int, SpecializedValue<int>> _kernel;
    private readonly int _targetWarps;

    public RowScaledGemv(Accelerator accelerator)
    {
        _kernel = accelerator.LoadKernel<GemvSources<float>, ArrayView<float>, ArrayView<float>, int, int, SpecializedValue<int>>(Kernel);
        _targetWarps = GemvRows.TargetWarps(accelerator, _kernel);
    }

    /// <summary>The compiled kernel (for its register and occupancy figures), when ILGPU exposes it.</summary>
    public Kernel? Compiled => _kernel.TryGetKernel(out var kernel) ? kernel : null;

    /// <summary>Bytes a row takes in the device layout.</summary>
    public static int RowBytes(int k) => (k + 15) & ~15;

    /// <param name="weights">Data [N, Kp] as 16-byte vectors, scales [N] and y [N] of each weight.</param>
    /// <param name="x">[K], 16-byte aligned (codes as floats for int8dq).</param>
    /// <param name="xScale">[1]: int8dq's token scale; unused otherwise.</param>
    public void Launch(AcceleratorStream stream, GemvSources<float> weights, ArrayView<float> x, ArrayView<float> xScale, int k)
    {
        int sets = weights.RowSets, split = weights.SplitShift(RowBytes(k) / 16, _targetWarps);
        _kernel(stream, GemvRows.Config(sets, split), weights, x, xScale, k, split, ResidualNorm.Fold(weights.Norm, weights.Input));
    }

    private static void Kernel(GemvSources<float> weights, ArrayView<float> x, ArrayView<float> xScale, int k, int splitShift, SpecializedValue<int> fold)
    {
        var shared = SharedMemory.Allocate<double>(GemvRows.SharedDoubles);
        double slot = fold.Value != 0 ? weights.Input.Load() : 0.0;
        var (set, slice) = GemvRows.Map(splitShift);
        var rows = weights.Resolve(set);
        int vectors = RowBytes(k) / 16, full = k / 16;
        long w0 = (long)rows.R0 * vectors, w1 = (long)rows.R1 * vectors, w2 = (long)rows.R2 * vectors, w3 = (long)rows.R3 * vectors;
        var x4 = x.Cast<Float4>();
        float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
        for (int v = slice * Warp.WarpSize + Warp.LaneIdx; v < vectors; v += Warp.WarpSize << splitShift)
        {
            Uint4 q0 = rows.A[w0 + v], q1 = rows.A[w1 + v], q2 = rows.B[w2 + v], q3 = rows.B[w3 + v];
            X16 xv = v < full ? X16.Load(x4, v) : X16.LoadTail(x, v, k);
            a0 = Dot(q0, xv, a0);
            a1 = Dot(q1, xv, a1);
            a2 = Dot(q2, xv, a2);
            a3 = Dot(q3, xv, a3);
        }
        var t = GemvRows.Reduce(a0, a1, a2, a3, splitShift, shared);
        float sx = (default(TValues).Codes ? xScale[0] : 1f) * (fold.Value != 0 ? weights.Input.Factor(slot) : 1f);
        var scale = new Float4
        {
            X = sx * rows.ScalesA[rows.R0],
            Y = sx * rows.ScalesA[rows.R1],
            Z = sx * rows.ScalesB[rows.R2],
            W = sx * rows.ScalesB[rows.R3],
        };
        rows.Store(slice, t, scale, fold.Value != 0);
    }

    /// <summary>acc + Σ x·v over the 16 bytes of <paramref name="q"/>, one FMA after another (a sum of products
    /// written as a tree costs an extra FADD per pair).</summary>
    private static float Dot(Uint4 q, X16 x, float acc) => Dot4(q.W, x.D, Dot4(q.Z, x.C, Dot4(q.Y, x.B, Dot4(q.X, x.A, acc))));

    private static float Dot4(uint word, Float4 x, float acc)
    {
        var f = default(TValues);
        acc += x.X * f.Value(word, 0);
        acc += x.Y * f.Value(word, 1);
        acc += x.Z * f.Value(word, 2);
        acc += x.W * f.Value(word, 3);
        return acc;
    }
}

/// <summary>The GEMM's view of a per-row-scaled byte weight (layout in <see cref="RowScaledGemv{TValues}"/>):
/// each of the first 128 threads dequantizes one 16-byte vector (v·scale, the reference's values).</summary>
public struct RowScaledTile<TValues> : IWeightTile
    where TValues : struct, IByteValues
{
    public ArrayView<Uint4> Data;
    public ArrayView<float> Scales;

    public readonly void Store(int n, int k, int rowBase, int k0, ArrayView<float> tile)
    {
        int t = Group.IdxX;
        if (t >= QuantizedGemm.TileN * 2)
            return;
        // Two vectors of 16 cover the tile's 32 columns of K.
        int r = t >> 1, half = t & 1;
        int row = GemvRows.Clamp(rowBase + r, n);
        int vectors = RowScaledGemv<TValues>.RowBytes(k) / 16, v = k0 / 16 + half;
        var f = default(TValues);
        int at = 16 * half * QuantizedGemm.Stride + r;
        if (v >= vectors)
        {
            for (int j = 0; j < 16; j++)
                tile[at + j * QuantizedGemm.Stride] = 0f;
            return;
        }
        Uint4 q = Data[(long)row * vectors + v];
        float s = Scales[row];
        StoreWord(tile, at, f, q.X, s);
        StoreWord(tile, at + 4 * QuantizedGemm.Stride, f, q.Y, s);
        StoreWord(tile, at + 8 * QuantizedGemm.Stride, f, q.Z, s);
        StoreWord(tile, at + 12 * QuantizedGemm.Stride, f, q.W, s);
    }

    private static void StoreWord(ArrayView<float> tile, int at, TValues f, uint word, float s)
    {
        tile[at] = f.Value(word, 0) * s;
        tile[at + QuantizedGemm.Stride] = f.Value(word, 1) * s;
        tile[at + 2 * QuantizedGemm.Stride] = f.Value(word, 2) * s;
        tile[at + 3 * QuantizedGemm.Stride] = f.Value(word, 3) * s;
    }
}
