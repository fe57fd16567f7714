using System.Runtime.Intrinsics;
using Lowbit.Backends.Cpu;
using Lowbit.Backends.Cpu.Kernels;
using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;
using Lowbit.Tests.Quantization.Formats;

namespace Lowbit.Tests.Backends.Cpu.Kernels;

/// <summary>Every packed-format kernel against the format's reference Dequantize + a float64 matmul, at every
/// SIMD level this CPU has, on odd shapes: N = 1, 7, 33 (one row, a 4-row block plus a tail); K = one group and
/// an odd number of groups (int8: K = 1, 17, 172 and 192 for its vector tails); m = 1 (decode: the GEMV reading
/// packed bytes) and 2, 5, 17 (prefill: unpack + the dense tile, with token tails).</summary>
public class PackedLinearTests
{
    private static readonly int[] Ns = [1, 7, 33];
    private static readonly int[] Ms = [1, 2, 5, 17];

    /// <summary>nf4-dq-32 with 7 block scales per factor: scaler blocks straddle rows, and a 4-row step reads several.</summary>
    private const string NarrowScalerBlocks = "nf4-dq-32-s7";

    private static readonly string[] Formats = ["int8wo", "int4wo-32", "int4wo-64", "int4wo-128", "int4wo-a8-32", "int4wo-a8-64", "int4wo-a8-128", "int4wo-a8-256", "fp8wo", "nf4", "nf4-32", "nf4-dq", "nf4-dq-32", NarrowScalerBlocks, "int8dq", "uintx-1-32", "uintx-2-64", "uintx-3-32", "uintx-4-32", "uintx-5-128", "uintx-6-32", "uintx-7-64", "fp6", "8da4w-32", "8da4w-64", "8da4w-128", "fp8dq-tensor", "fp8dq-row"];

    public static TheoryData<string, string> LevelsAndFormats()
    {
        var data = new TheoryData<string, string>();
        foreach (string level in Enum.GetNames<SimdLevel>())
        {
            foreach (string format in Formats)
                data.Add(level, format);
        }

        return data;
    }

    private static int[] Ks(string format) => format switch
    {
        "int8wo" or "fp8wo" or "int8dq" or "fp8dq-tensor" or "fp8dq-row" => [1, 17, 172, 192],
        "nf4" or "nf4-dq" => [64, 192],
        NarrowScalerBlocks => [32, 96],
        "fp6" => [4, 20, 172, 192],
        _ => [int.Parse(format[(format.LastIndexOf('-') + 1)..]), 3 * int.Parse(format[(format.LastIndexOf('-') + 1)..])],
    };

    /// <summary>The weight (through the format's config, as the Quantizer makes it), its reference rows, and per
    /// element a magnitude that bounds what f32 rounding can cost: |deq|; for formats with zero points also the
    /// terms the decode folds apart (int4wo: s·Σx·q + (z − 8s)·Σx, 16|s| + |z|; uintx: s·Σx·q − z·s·Σx, |s|(z + 256)),
    /// whose parts can be larger than their sum.</summary>
    private static IWeight Make(string format, int n, int k, Random rng, out float[] deq, out float[] magnitude)
    {
        using Tensor dense = QuantTestData.Gaussian(DType.BF16, n, k, rng, out _, sigma: 0.1f);
        IWeight w = Quantizer.QuantizeWeight(format == NarrowScalerBlocks ? new NF4WeightOnlyConfig(32, DoubleQuantize: true, ScalerBlockSize: 7) : QuantConfigs.Parse(format), dense);
        deq = QuantTestData.Dequantized(w, QuantTestData.Reference(w));
        magnitude = new float[n * k];
        for (int i = 0; i < deq.Length; i++)
        {
            magnitude[i] = Math.Abs(deq[i]) + w switch
            {
                Int4GroupedWeight w4 => Int4Magnitude(w4, i, k),
                Int4GroupedA8Weight a8 => Int4Magnitude(a8.Weight, i, k),
                CodedWeight { Zeros: { } z } c => Math.Abs(c.Scales.AsSpan<float>()[(i / k * c.Groups) + (i % k / c.GroupSize)]
                    * (z.AsSpan<float>()[(i / k * c.Groups) + (i % k / c.GroupSize)] + 256)),
                _ => 0,
            };
        }

        return w;
    }

    private static float Int4Magnitude(Int4GroupedWeight w, int i, int k) =>
        (16 * Bf16(w.Scales, (i / k * w.Groups) + (i % k / w.GroupSize))) + Math.Abs(Bf16(w.Zeros, (i / k * w.Groups) + (i % k / w.GroupSize)));

    private static float Bf16(Tensor t, int i) => DTypeConversion.BFloat16ToSingle(t.AsSpan<ushort>()[i]);

    [Theory]
    [MemberData(nameof(LevelsAndFormats))]
    public void MatchesReferenceDequantizeInFloat64(string levelName, string format)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var rng = new Random(format.GetHashCode(StringComparison.Ordinal) & 0xFFFF);
        foreach (int k in Ks(format))
        {
            foreach (int n in Ns)
            {
                using IWeight w = Make(format, n, k, rng, out float[] deq, out float[] magnitude);
                foreach (int m in Ms)
                {
                    float[] x = CpuTestData.Floats(rng, m * k);
                    var y = new float[m * n];
                    CpuLinearKernels.For(w)(level, CpuTestData.Pool3, x, m, w, y);
                    if (format == "int8dq" || format.StartsWith("8da4w-", StringComparison.Ordinal))
                        x = QuantTestData.FakeQuantizedPerToken(x, m, k, asymmetric: format != "int8dq"); // the reference multiplies the quantized activations
                    if (format.StartsWith("int4wo-a8-", StringComparison.Ordinal))
                        x = QuantTestData.FakeQuantizedPerToken(x, m * k / 32, 32); // per block of 32, as int8dq per token
                    if (format.StartsWith("fp8dq-", StringComparison.Ordinal))
                        x = QuantTestData.Float8Cast(x, format == "fp8dq-row" ? k : m * k);
                    for (int t = 0; t < m; t++)
                    {
                        for (int r = 0; r < n; r++)
                        {
                            double sum = 0, mag = 0;
                            for (int i = 0; i < k; i++)
                            {
                                sum += (double)x[(t * k) + i] * deq[(r * k) + i];
                                mag += Math.Abs(x[(t * k) + i]) * magnitude[(r * k) + i];
                            }

                            double error = Math.Abs(y[(t * n) + r] - sum);
                            double tolerance = 2e-6 * Math.Sqrt(k) * mag;
                            Assert.True(error <= tolerance, $"{format} {level} K={k} N={n} m={m}: y[{t},{r}] = {y[(t * n) + r]}, reference {sum}, error {error:E2} > {tolerance:E2}");
                        }
                    }
                }
            }
        }
    }

    /// <summary>The E4M3 bit trick gives the table's value for every code but the two NaNs, at every width.</summary>
    [Fact]
    public void E4m3_map_decodes_every_finite_code_exactly()
    {
        var table = Lowbit.Quantization.Primitives.Float8E4M3.DecodeTable;
        for (int code = 0; code < 256; code++)
        {
            if ((code & 0x7F) == 0x7F)
                continue;
            int sx = (sbyte)code; // byte codes reach the map sign-extended
            Assert.Equal(table[code], E4M3Map.Map(sx));
            Assert.Equal(table[code], E4M3Map.Map(Vector256.Create(sx)).ToScalar());
            Assert.Equal(table[code], E4M3Map.Map(Vector512.Create(sx)).ToScalar());
        }
    }

    /// <summary>The NF4 map's constants are Nf4.Table, at every width.</summary>
    [Fact]
    public void Nf4_map_is_the_nf4_table()
    {
        var table = Lowbit.Quantization.Primitives.Nf4.Table;
        for (int code = 0; code < 16; code++)
        {
            Assert.Equal(table[code], Nf4Map.Map(code));
            Assert.Equal(table[code], Nf4Map.Map(Vector256.Create(code)).ToScalar());
            Assert.Equal(table[code], Nf4Map.Map(Vector512.Create(code)).ToScalar());
        }
    }

    /// <summary>The FP6 bit trick gives the table's value for all 64 codes, at every width.</summary>
    [Fact]
    public void Fp6_map_decodes_every_code_exactly()
    {
        var table = Lowbit.Quantization.Primitives.FloatX.Fp6E3M2.DecodeTable;
        for (int code = 0; code < 64; code++)
        {
            Assert.Equal(table[code], Fp6Map.Map(code));
            Assert.Equal(table[code], Fp6Map.Map(Vector256.Create(code)).ToScalar());
            Assert.Equal(table[code], Fp6Map.Map(Vector512.Create(code)).ToScalar());
        }
    }

    [Fact]
    public void Sizes_are_checked()
    {
        using Tensor dense = QuantTestData.Gaussian(DType.F32, 4, 64, new Random(1), out _);
        using var w = Int4GroupedWeight.Quantize(dense, 64);
        Assert.Throws<ArgumentException>(() => Int4GroupedGemv.Compute(CpuCapabilities.Best, CpuTestData.Pool3, new float[63], 1, w, new float[4]));
        Assert.Throws<ArgumentException>(() => Int4GroupedGemv.Compute(CpuCapabilities.Best, CpuTestData.Pool3, new float[64], 1, w, new float[3]));
    }
}
