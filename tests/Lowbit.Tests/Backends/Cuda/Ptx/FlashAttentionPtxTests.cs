using Lowbit.Cuda.Ptx;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cuda.Ptx;

/// <summary>
/// The tensor-core prefill attention's PTX run by <see cref="PtxInterpreter"/> against float64 causal attention of the
/// same bf16-rounded queries (scaled by scale·log2 e, as the kernel rounds them), keys and values, at shapes that cut
/// query and key tiles, start past position 0 and share kv heads.
/// </summary>
public sealed class FlashAttentionPtxTests
{
    [Theory]
    [InlineData(128, 5, 9, 4, 2)]     // one partial query tile, one key tile
    [InlineData(128, 70, 0, 2, 1)]    // two query tiles, the second nearly empty; two key tiles
    [InlineData(64, 100, 40, 4, 2)]   // 140 keys: a third, partial key tile; D = 64
    [InlineData(64, 64, 70, 3, 3)]    // a tile of unmasked keys before the masked one
    [InlineData(128, 33, 130, 8, 2)]  // long history, short prompt: three unmasked key tiles
    [InlineData(128, 150, 20, 2, 1, 8)] // 8 warps: 128 query rows a block
    [InlineData(64, 130, 0, 2, 2, 8)]
    [InlineData(128, 70, 0, 2, 1, 4, true)] // a bf16 KV cache: its rows copied as they are
    [InlineData(64, 100, 40, 4, 2, 8, true)]
    public void Attention_matches_float64_attention_of_the_bf16_operands(int d, int rows, int start, int heads, int kvHeads, int warps = 4, bool bf16Cache = false)
    {
        const int maxSequence = 256;
        var rng = new Random(d + rows * 31 + start);
        float[] q = Random(rng, rows * heads * d), keys = Random(rng, maxSequence * kvHeads * d), values = Random(rng, maxSequence * kvHeads * d);
        float scale = (float)(1 / Math.Sqrt(d) * 1.4426950408889634); // log2 e: the kernel's softmax is base 2

        var sim = new PtxInterpreter(FlashAttentionPtx.Module(d, warps, bf16Cache)) { Seed = rows };
        var output = new byte[rows * heads * d * 4];
        ulong qAt = sim.Allocate(Bytes(q)), outAt = sim.Allocate(output);
        ulong kAt = sim.Allocate(bf16Cache ? Bf16Bytes(keys) : Bytes(keys)), vAt = sim.Allocate(bf16Cache ? Bf16Bytes(values) : Bytes(values));
        sim.Launch(FlashAttentionPtx.Entry(d, warps, bf16Cache), FlashAttentionPtx.Blocks(rows, heads, warps), 1, FlashAttentionPtx.Threads(warps), FlashAttentionPtx.SharedBytes(d),
            qAt, kAt, vAt, outAt, (ulong)rows, (ulong)start, (ulong)heads, (ulong)(heads / kvHeads), (ulong)(kvHeads * d), BitConverter.SingleToUInt32Bits(scale));
        var actual = sim.Read(outAt, output.Length);

        int kvColumns = kvHeads * d;
        for (int r = 0; r < rows; r++)
        {
            for (int h = 0; h < heads; h++)
            {
                int g = h / (heads / kvHeads), length = start + r + 1;
                var logits = new double[length];
                for (int t = 0; t < length; t++)
                {
                    for (int i = 0; i < d; i++)
                        logits[t] += Bf16(q[r * heads * d + h * d + i] * scale) * Bf16(keys[t * kvColumns + g * d + i]);
                }
                double top = logits.Max(), total = logits.Sum(l => Math.Pow(2, l - top));
                for (int i = 0; i < d; i++)
                {
                    double expected = 0;
                    for (int t = 0; t < length; t++)
                        expected += Math.Pow(2, logits[t] - top) / total * Bf16(values[t * kvColumns + g * d + i]);
                    float got = BitConverter.ToSingle(actual, 4 * (r * heads * d + h * d + i));
                    // P is rounded to bf16 (relative 2^-9 a weight): the output moves by well under 2^-8 of max |v| = 1.
                    Assert.True(Math.Abs(got - expected) < 4e-3, $"row {r} head {h} dim {i}: {got}, expected {expected}");
                }
            }
        }
    }

    [Fact]
    public void Only_head_dimensions_64_and_128_and_4_or_8_warps_are_emitted_as_ascii()
    {
        Assert.All(FlashAttentionPtx.Module(128, 8), c => Assert.True(c < 128, "the module goes to the driver as ASCII"));
        Assert.Throws<ArgumentOutOfRangeException>(() => FlashAttentionPtx.Module(96));
        Assert.Throws<ArgumentOutOfRangeException>(() => FlashAttentionPtx.Module(128, 2));
    }

    private static byte[] Bf16Bytes(float[] values)
    {
        var bits = new ushort[values.Length];
        DTypeConversion.FromSingle(values, DType.BF16, bits);
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
    }

    private static double Bf16(float value) => DTypeConversion.BFloat16ToSingle(DTypeConversion.SingleToBFloat16(value));

    private static float[] Random(Random rng, int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    private static byte[] Bytes(float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();
}
