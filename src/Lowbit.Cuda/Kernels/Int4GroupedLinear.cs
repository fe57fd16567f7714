using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// int4wo-G on the device: y[n] = Σ_k x[k]·((q[n, k] − 8)·s[n, g] + z[n, g]), g = k / G.
/// <para>Device layout (<see cref="CudaWeight"/>): Data U8 [N, K/2], row n at byte n·K/2, element k in byte k/2,
/// low nibble when k is even (a plain little-endian nibble stream: the 32-bit word j of a 16-byte chunk holds
/// elements 8j..8j + 7 of the chunk at bits 4i..4i + 3). A 16-byte chunk is 32 elements and never straddles a
/// group (G is a multiple of 32). ScaleZero U32 [N, K/G]: bf16 scale in the low half, bf16 zero in the high
/// half, one 4-byte load per chunk. The host's chunked nibble order (for x86 SIMD) is reordered at upload.</para>
/// <para>GEMV: <see cref="GemvRows"/> (four rows a warp, one chunk a lane a row, the 32 x values loaded once as
/// eight 16-byte vectors for the four rows). The zero point folds out of the loop per chunk:
/// Σ x·((q − 8)s + z) = s·Σ x·(q − 8) + z·Σx, Σx once per chunk for the four rows. The nibbles go to floats
/// with the magic number without shifting each one down: nibble i of a word, masked in place (bits 4i..4i + 3,
/// i ≤ 4), is 16^i·q, so 2^23 + 16^i·q − (2^23 + 16^i·8) = 16^i·(q − 8) exactly; five accumulators (one per
/// 16^i) take them and are scaled by 16^−i once per chunk. Nibbles 5..7 are the same after one shift by 20.
/// Per weight: one mask-or, one FADD, one FMA (+ a ninth of a shift).</para>
/// Decode 14336×4096, G = 64: 29.4 MB nibbles + 3.7 MB scale/zero + 16 KB x; 117 MFLOP (3.5 FLOP/byte,
/// memory-bound). Floor at 2.97 TB/s: 11.1 us. Measured: see docs/gpu.md (lowbit selftest --device cuda --bench).
/// </summary>
public sealed class Int4GroupedGemv
{
    private readonly Action<AcceleratorStream, KernelConfig, GemvSources<uint>, ArrayView<float>, int, int, int> _kernel;
    private readonly int _targetWarps;

    public Int4GroupedGemv(Accelerator accelerator)
    {
        _kernel = accelerator.LoadKernel<GemvSources<uint>, ArrayView<float>, int, int, int>(Kernel);
        _targetWarps = GemvRows.TargetWarps(accelerator, _kernel);
    }

    /// <summary>The compiled kernel (for its register and occupancy figures), when ILGPU exposes it.</summary>
    public Kernel? Compiled => _kernel.TryGetKernel(out var kernel) ? kernel : null;

    /// <param name="weights">Data [N, K/32] chunks of 16 bytes, scale/zero [N, K/G] and y [N] of each weight.</param>
    /// <param name="x">[K], 16-byte aligned.</param>
    public void Launch(AcceleratorStream stream, GemvSources<uint> weights, ArrayView<float> x, int k, int groupSize)
    {
        if (weights.Norm.On != 0 || weights.Input.On != 0)
            throw new ArgumentException("The int4 GEMV has no norm fold.", nameof(weights));
        int sets = weights.RowSets, split = weights.SplitShift(k / 32, _targetWarps);
        // Chunk v is in group v >> shift (G / 32 is a power of two).
        int shift = System.Numerics.BitOperations.Log2((uint)groupSize / 32);
        _kernel(stream, GemvRows.Config(sets, split), weights, x, k, shift, split);
    }

    private static void Kernel(GemvSources<uint> weights, ArrayView<float> x, int k, int groupShift, int splitShift)
    {
        var shared = SharedMemory.Allocate<double>(GemvRows.SharedDoubles);
        var (set, slice) = GemvRows.Map(splitShift);
        var rows = weights.Resolve(set);
        var (w, wb, scaleZero, sb) = (rows.A, rows.B, rows.ScalesA, rows.ScalesB);
        int chunks = k / 32, groups = chunks >> groupShift;
        long w0 = (long)rows.R0 * chunks, w1 = (long)rows.R1 * chunks, w2 = (long)rows.R2 * chunks, w3 = (long)rows.R3 * chunks;
        long g0 = (long)rows.R0 * groups, g1 = (long)rows.R1 * groups, g2 = (long)rows.R2 * groups, g3 = (long)rows.R3 * groups;
        var x4 = x.Cast<Float4>();
        float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
        int step = Warp.WarpSize << splitShift;
        int v = slice * Warp.WarpSize + Warp.LaneIdx;
        // The next chunk's weights and scales are loaded before this chunk is computed, so a warp has two chunks'
        // loads in flight (one at a time left the kernel latency-bound at ~40% of HBM bandwidth on the H100).
        // The first chunk's loads and the loop's are written out twice on purpose: the same code through one
        // helper returning a struct ran 8% slower on the H100 (122 registers, 1209 vs 1305 GB/s at 14336×4096).
        Uint4 q0 = default, q1 = default, q2 = default, q3 = default;
        uint p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        if (v < chunks)
        {
            int g = v >> groupShift;
            q0 = w[w0 + v];
            q1 = w[w1 + v];
            q2 = wb[w2 + v];
            q3 = wb[w3 + v];
            p0 = scaleZero[g0 + g];
            p1 = scaleZero[g1 + g];
            p2 = sb[g2 + g];
            p3 = sb[g3 + g];
        }
        for (; v < chunks; v += step)
        {
            int next = v + step;
            Uint4 n0 = default, n1 = default, n2 = default, n3 = default;
            uint o0 = 0, o1 = 0, o2 = 0, o3 = 0;
            if (next < chunks)
            {
                int g = next >> groupShift;
                n0 = w[w0 + next];
                n1 = w[w1 + next];
                n2 = wb[w2 + next];
                n3 = wb[w3 + next];
                o0 = scaleZero[g0 + g];
                o1 = scaleZero[g1 + g];
                o2 = sb[g2 + g];
                o3 = sb[g3 + g];
            }
            X16 lo = X16.Load(x4, 2L * v), hi = X16.Load(x4, 2L * v + 1);
            float sum = lo.Sum() + hi.Sum();
            a0 += Chunk(q0, p0, lo, hi, sum);
            a1 += Chunk(q1, p1, lo, hi, sum);
            a2 += Chunk(q2, p2, lo, hi, sum);
            a3 += Chunk(q3, p3, lo, hi, sum);
            (q0, q1, q2, q3, p0, p1, p2, p3) = (n0, n1, n2, n3, o0, o1, o2, o3);
        }
        var t = GemvRows.Reduce(a0, a1, a2, a3, splitShift, shared);
        // No norm fold here: its views and epilogue took the kernel from 120 to 154 registers (12 warps an SM instead
        // of 16) and int4wo-64 decode from 287 to 255 tok/s on the H100.
        rows.Store(slice, t, new Float4 { X = 1f, Y = 1f, Z = 1f, W = 1f }, fold: false);
    }

    /// <summary>s·Σ x·(q − 8) + z·Σx over one chunk of 32 elements.</summary>
    private static float Chunk(Uint4 q, uint scaleZero, X16 lo, X16 hi, float sum)
    {
        var acc = default(Powers);
        acc = Word(q.X, lo.A, lo.B, acc);
        acc = Word(q.Y, lo.C, lo.D, acc);
        acc = Word(q.Z, hi.A, hi.B, acc);
        acc = Word(q.W, hi.C, hi.D, acc);
        float dot = acc.P0 + acc.P1 * (1f / 16) + acc.P2 * (1f / 256) + acc.P3 * (1f / 4096) + acc.P4 * (1f / 65536);
        return Scale(scaleZero) * dot + Zero(scaleZero) * sum;
    }

    /// <summary>Adds x·(q − 8)·16^i of the word's 8 elements (x in a, then b) to accumulator i, one FMA each.</summary>
    private static Powers Word(uint w, Float4 a, Float4 b, Powers acc)
    {
        uint u = w >> 20;
        acc.P0 += a.X * (Magic.Float(w & 0xFu) - (Magic.Value + 8f));
        acc.P1 += a.Y * (Magic.Float(w & 0xF0u) - (Magic.Value + 128f));
        acc.P2 += a.Z * (Magic.Float(w & 0xF00u) - (Magic.Value + 2048f));
        acc.P3 += a.W * (Magic.Float(w & 0xF000u) - (Magic.Value + 32768f));
        acc.P4 += b.X * (Magic.Float(w & 0xF0000u) - (Magic.Value + 524288f));
        acc.P0 += b.Y * (Magic.Float(u & 0xFu) - (Magic.Value + 8f));
        acc.P1 += b.Z * (Magic.Float(u & 0xF0u) - (Magic.Value + 128f));
        acc.P2 += b.W * (Magic.Float(u & 0xF00u) - (Magic.Value + 2048f));
        return acc;
    }

    /// <summary>The bf16 scale (low half) widened to f32.</summary>
    public static float Scale(uint scaleZero) => Interop.IntAsFloat(scaleZero << 16);

    /// <summary>The bf16 zero (high half) widened to f32.</summary>
    public static float Zero(uint scaleZero) => Interop.IntAsFloat(scaleZero & 0xFFFF0000u);

    /// <summary>Sums of x·(q − 8)·16^i, i = 0..4.</summary>
    private struct Powers
    {
        public float P0, P1, P2, P3, P4;
    }
}

/// <summary>The GEMM's view of an int4wo-G weight (layout in <see cref="Int4GroupedGemv"/>): each of the first 64
/// threads dequantizes one row's 32-element chunk, (q − 8)·s + z as the reference.</summary>
public struct Int4GroupedTile : IWeightTile
{
    public ArrayView<Uint4> Data;
    public ArrayView<uint> ScaleZero;
    public int GroupSize;

    public readonly void Store(int n, int k, int rowBase, int k0, ArrayView<float> tile)
    {
        int t = Group.IdxX;
        if (t >= QuantizedGemm.TileN)
            return;
        int row = GemvRows.Clamp(rowBase + t, n);
        // TileK = 32: one chunk a row, inside K (a multiple of 32).
        Uint4 q = Data[(long)row * (k / 32) + k0 / 32];
        uint p = ScaleZero[(long)row * (k / GroupSize) + k0 / GroupSize];
        float s = Int4GroupedGemv.Scale(p), z = Int4GroupedGemv.Zero(p);
        StoreWord(tile, t, q.X, s, z);
        StoreWord(tile, 8 * QuantizedGemm.Stride + t, q.Y, s, z);
        StoreWord(tile, 16 * QuantizedGemm.Stride + t, q.Z, s, z);
        StoreWord(tile, 24 * QuantizedGemm.Stride + t, q.W, s, z);
    }

    private static void StoreWord(ArrayView<float> tile, int at, uint word, float s, float z)
    {
        for (int i = 0; i < 8; i++)
            tile[at + i * QuantizedGemm.Stride] = (Magic.Float((word >> (4 * i)) & 0xFu) - (Magic.Value + 8f)) * s + z;
    }
}
