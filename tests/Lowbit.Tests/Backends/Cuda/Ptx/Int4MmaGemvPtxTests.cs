using Lowbit.Cuda.Ptx;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cuda.Ptx;

/// <summary>
/// The int4wo tensor-core GEMV's PTX run by <see cref="PtxInterpreter"/> against float64 sums of the weights it is
/// given in the device layout (row-major nibbles, element k in byte k/2, low nibble for even k; bf16 scale | bf16
/// zero words [N, K/G]): every group size, K split over warps unevenly, each pipeline depth, copies landing late,
/// q/k/v and gate·up in one launch, and the norm fold on both sides. On a GPU `lowbit selftest` checks the same
/// kernel against the CPU backend.
/// </summary>
public sealed class Int4MmaGemvPtxTests
{
    public static TheoryData<int, int, int, int, int> Singles() => new()
    {
        // group, n, k, warps a row set, stages
        { 32, 45, 1152, 1, 2 },
        { 32, 45, 1152, 3, 3 },
        { 64, 45, 1152, 7, 2 },
        { 64, 33, 1152, 2, 4 },
        { 128, 45, 1152, 3, 2 },
        { 256, 40, 1280, 4, 3 },
    };

    [Theory]
    [MemberData(nameof(Singles))]
    public void One_weight_matches_float64(int group, int n, int k, int split, int stages)
    {
        var rng = new Random(group * 31 + n + split);
        var w = Weight.Random(rng, n, k, group);
        var x = Values(rng, k);
        var run = new Run(group, stages, split, lateCopies: split % 2 == 1);
        var (data, scales) = w.Place(run);
        ulong y = run.Output(n);
        run.Launch(Sets(n), [data, data, data], [scales, scales, scales], [y, y, y], x, [n, 0, 0], gated: false, k);
        AssertClose(w.Times(x), run.Floats(y, n), k);
    }

    [Fact]
    public void Q_k_v_in_one_launch_write_each_output()
    {
        const int k = 256, group = 64;
        var rng = new Random(5);
        Weight[] ws = [Weight.Random(rng, 29, k, group), Weight.Random(rng, 13, k, group), Weight.Random(rng, 13, k, group)];
        var x = Values(rng, k);
        var run = new Run(group, 2, 2, lateCopies: true);
        var placed = ws.Select(w => w.Place(run)).ToArray();
        ulong[] ys = [run.Output(29), run.Output(13), run.Output(13)];
        run.Launch(Sets(29) + Sets(13) + Sets(13), placed.Select(p => p.Data).ToArray(), placed.Select(p => p.Scales).ToArray(),
            ys, x, [29, 13, 13], gated: false, k);
        for (int i = 0; i < 3; i++)
            AssertClose(ws[i].Times(x), run.Floats(ys[i], ws[i].N), k);
    }

    [Fact]
    public void Gate_and_up_give_silu_gate_times_up()
    {
        const int k = 384, group = 128, n = 21;
        var rng = new Random(6);
        Weight gate = Weight.Random(rng, n, k, group), up = Weight.Random(rng, n, k, group);
        var x = Values(rng, k);
        var run = new Run(group, 3, 3, lateCopies: false);
        var (g, u) = (gate.Place(run), up.Place(run));
        ulong y = run.Output(n);
        run.Launch((n + 15) / 16, [g.Data, u.Data, u.Data], [g.Scales, u.Scales, u.Scales], [y, y, y], x, [n, 0, 0], gated: true, k);
        double[] a = gate.Times(x), b = up.Times(x);
        AssertClose(a.Select((v, i) => v / (1 + Math.Exp(-v)) * b[i]).ToArray(), run.Floats(y, n), k);
    }

    [Fact]
    public void The_norm_fold_adds_into_the_residual_and_reads_the_input_scale()
    {
        const int k = 256, group = 64, n = 45;
        var rng = new Random(7);
        var w = Weight.Random(rng, n, k, group);
        var x = Values(rng, k);
        float[] residual = Values(rng, n), gain = Values(rng, n);
        var run = new Run(group, 2, 2, lateCopies: true);
        var (data, scales) = w.Place(run);
        ulong residualAt = run.Sim.Allocate(Bytes(residual)), gainAt = run.Sim.Allocate(Bytes(gain)), normedAt = run.Output(n);
        ulong sumsAt = run.Sim.Allocate(new byte[32 * 8]), nextAt = run.Sim.Allocate(Enumerable.Repeat(9.0, 32).SelectMany(BitConverter.GetBytes).ToArray());
        // The producer: residual += x·Wᵀ, normed = residual·g, each row set's Σ residual² into slot set % 32, the
        // next producer's slots zeroed.
        run.Launch(Sets(n), [data, data, data], [scales, scales, scales], [normedAt, normedAt, normedAt], x, [n, 0, 0], gated: false, k,
            norm: [residualAt, gainAt, normedAt, sumsAt, nextAt, 1]);
        double[] added = w.Times(x).Select((v, i) => v + residual[i]).ToArray();
        AssertClose(added, run.Floats(residualAt, n), k);
        AssertClose(added.Select((v, i) => v * gain[i]).ToArray(), run.Floats(normedAt, n), k);
        double[] sums = run.Doubles(sumsAt, 32);
        for (int set = 0; set < 32; set++)
        {
            double expected = added.Skip(32 * set).Take(32).Sum(v => v * v);
            Assert.True(Math.Abs(sums[set] - expected) <= 1e-5 * Math.Max(expected, 1e-30), $"slot {set}: {sums[set]}, expected {expected}");
        }
        Assert.All(run.Doubles(nextAt, 32), v => Assert.Equal(0.0, v));

        // A consumer of such a row: its dot products times 1/sqrt(Σ slots / N + eps).
        var reader = Weight.Random(rng, 37, 256, group);
        var input = Values(rng, 256);
        var consumer = new Run(group, 2, 1, lateCopies: false);
        var (readerData, readerScales) = reader.Place(consumer);
        ulong y = consumer.Output(37), slots = consumer.Sim.Allocate(sums.SelectMany(BitConverter.GetBytes).ToArray());
        float width = 1f / 256, eps = 1e-5f;
        consumer.Launch(Sets(37), [readerData, readerData, readerData], [readerScales, readerScales, readerScales], [y, y, y], input, [37, 0, 0],
            gated: false, 256, input: [slots, BitConverter.SingleToUInt32Bits(width), BitConverter.SingleToUInt32Bits(eps), 1]);
        double factor = 1 / Math.Sqrt(sums.Sum() * width + eps);
        AssertClose(reader.Times(input).Select(v => v * factor).ToArray(), consumer.Floats(y, 37), 256);
    }

    private static int Sets(int n) => (n + 31) / 32;

    private static void AssertClose(double[] expected, float[] actual, int k)
    {
        double scale = expected.Max(Math.Abs), error = expected.Select((e, i) => Math.Abs(e - actual[i])).Max();
        Assert.True(error <= 2e-5 * Math.Sqrt(k) * scale, $"largest error {error:E2} against {scale:E2}");
    }

    private static float[] Values(Random rng, int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    private static byte[] Bytes(float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    /// <summary>A weight in the device layout, with its float64 product.</summary>
    private sealed record Weight(int N, int K, int Group, byte[] Nibbles, uint[] ScaleZero)
    {
        public static Weight Random(Random rng, int n, int k, int group)
        {
            var nibbles = new byte[n * k / 2];
            rng.NextBytes(nibbles);
            var words = new uint[n * (k / group)];
            for (int i = 0; i < words.Length; i++)
            {
                uint scale = DTypeConversion.SingleToBFloat16((float)(0.01 + 0.02 * rng.NextDouble()));
                uint zero = DTypeConversion.SingleToBFloat16((float)(0.02 * (rng.NextDouble() - 0.5)));
                words[i] = scale | zero << 16;
            }
            return new Weight(n, k, group, nibbles, words);
        }

        public double[] Times(float[] x)
        {
            var y = new double[N];
            for (int r = 0; r < N; r++)
            {
                for (int c = 0; c < K; c++)
                {
                    int q = (Nibbles[(r * K + c) / 2] >> (4 * (c % 2))) & 0xF;
                    uint word = ScaleZero[r * (K / Group) + c / Group];
                    double s = DTypeConversion.BFloat16ToSingle((ushort)word), z = DTypeConversion.BFloat16ToSingle((ushort)(word >> 16));
                    y[r] += x[c] * ((q - 8) * s + z);
                }
            }
            return y;
        }

        /// <summary>The weight copied into the interpreter's global memory.</summary>
        public (ulong Data, ulong Scales) Place(Run run) =>
            (run.Sim.Allocate(Nibbles), run.Sim.Allocate(ScaleZero.SelectMany(BitConverter.GetBytes).ToArray()));
    }

    /// <summary>One module and its launches.</summary>
    private sealed class Run(int group, int stages, int split, bool lateCopies)
    {
        public PtxInterpreter Sim { get; } = new(Int4MmaGemvPtx.Module(group, stages)) { LateCopies = lateCopies, Seed = group + split };

        public ulong Output(int n) => Sim.Allocate(new byte[4 * n]);

        public float[] Floats(ulong address, int n) => Enumerable.Range(0, n).Select(i => BitConverter.ToSingle(Sim.Read(address + (ulong)(4 * i), 4))).ToArray();

        public double[] Doubles(ulong address, int n) => Enumerable.Range(0, n).Select(i => BitConverter.ToDouble(Sim.Read(address + (ulong)(8 * i), 8))).ToArray();

        /// <param name="norm">ResidualNorm's residual, g, normed, sums, next, on (off when null).</param>
        /// <param name="input">InputScale's sums, 1/N bits, eps bits, on (off when null).</param>
        public void Launch(int sets, ulong[] data, ulong[] scales, ulong[] y, float[] x, int[] n, bool gated, int k, ulong[]? norm = null, ulong[]? input = null)
        {
            ulong xAddress = Sim.Allocate(Bytes(x));
            norm ??= [0, 0, 0, 0, 0, 0];
            input ??= [0, 0, 0, 0];
            Sim.Launch(Int4MmaGemvPtx.Entry(group, stages), sets, 1, 32 * split, Int4MmaGemvPtx.SharedBytes(group, stages, split),
            [
                data[0], data[1], data[2], scales[0], scales[1], scales[2], y[0], y[1], y[2], xAddress,
                (ulong)n[0], (ulong)n[1], (ulong)n[2], gated ? 1UL : 0, (ulong)k, (ulong)split, .. norm, .. input,
            ]);
        }
    }
}
