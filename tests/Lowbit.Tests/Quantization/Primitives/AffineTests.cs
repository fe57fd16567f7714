using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>torchao's affine primitives on values worked out by hand (each case's arithmetic is in its
/// comment), then error bounds and round trips on random data.</summary>
public class AffineTests
{
    private static readonly AffineScheme Int8Sym = AffineScheme.Int8Symmetric(DType.F32);
    private static readonly AffineScheme Int4Sym = new(MappingType.Symmetric, QuantRange.Int4, ZeroPointDomain.Int, AffineScheme.F32Eps, DType.F32);
    private static readonly AffineScheme UInt4Asym = new(MappingType.Asymmetric, QuantRange.UInt4, ZeroPointDomain.Int, AffineScheme.F32Eps, DType.F32);
    private static readonly AffineScheme UInt4Float = new(MappingType.Asymmetric, QuantRange.UInt4, ZeroPointDomain.Float, 1e-6f, DType.F32, DType.F32);

    private static int[] Quantize(float[] block, QParams p, AffineScheme scheme, DType dtype = DType.F32)
    {
        var q = new int[block.Length];
        Affine.Quantize(block, p, scheme, dtype, q);
        return q;
    }

    private static float[] Dequantize(int[] q, QParams p, AffineScheme scheme)
    {
        var x = new float[q.Length];
        Affine.Dequantize(q, p, scheme, x);
        return x;
    }

    [Fact]
    public void Symmetric_int8_by_hand()
    {
        // amax = 127.5, scale = 127.5 / (255 / 2) = 1, zero = trunc((127 − 128 + 1) / 2) = 0.
        // round(127.5) = 128 (half to even) → clamped to 127; round(−127.5) = −128; round(2.5) = 2; round(−0.5) = 0.
        float[] block = [127.5f, -127.5f, 2.5f, -0.5f, 3.4f, 0f];
        QParams p = Affine.ChooseQParams(block, Int8Sym);
        Assert.Equal(new QParams(1f, 0f), p);
        int[] q = Quantize(block, p, Int8Sym);
        Assert.Equal([127, -128, 2, 0, 3, 0], q);
        Assert.Equal([127f, -128f, 2f, 0f, 3f, 0f], Dequantize(q, p, Int8Sym));
    }

    [Fact]
    public void Symmetric_int4_by_hand()
    {
        // amax = 3.75, scale = 3.75 / (15 / 2) = 0.5, 1/scale = 2, zero = trunc((7 − 8 + 1) / 2) = 0.
        // 3.75·2 = 7.5 → 8 → clamp 7; −1·2 = −2; 0.25·2 = 0.5 → 0 (half to even).
        float[] block = [3.75f, -1f, 0.25f];
        QParams p = Affine.ChooseQParams(block, Int4Sym);
        Assert.Equal(new QParams(0.5f, 0f), p);
        int[] q = Quantize(block, p, Int4Sym);
        Assert.Equal([7, -2, 0], q);
        Assert.Equal([3.5f, -1f, 0f], Dequantize(q, p, Int4Sym));
    }

    [Fact]
    public void Asymmetric_int_zero_point_by_hand()
    {
        // min⁻ = −3, max⁺ = 12, scale = 15 / 15 = 1, zero = 0 − round(−3 / 1) = 3.
        // q = round(x) + 3: −3 → 0, 12 → 15, 0.5 → 0 + 3, 1.5 → 2 + 3, 2.5 → 2 + 3; deq = q − 3.
        float[] block = [-3f, 12f, 0.5f, 1.5f, 2.5f];
        QParams p = Affine.ChooseQParams(block, UInt4Asym);
        Assert.Equal(new QParams(1f, 3f), p);
        int[] q = Quantize(block, p, UInt4Asym);
        Assert.Equal([0, 15, 3, 5, 5], q);
        Assert.Equal([-3f, 12f, 0f, 2f, 2f], Dequantize(q, p, UInt4Asym));
    }

    [Fact]
    public void Asymmetric_preserves_zero_for_positive_blocks()
    {
        // min⁻ = min(2, 0) = 0, so zero = 0 − round(0) = 0: the value 0 stays exactly representable.
        QParams p = Affine.ChooseQParams([2f, 15f], UInt4Asym);
        Assert.Equal(new QParams(1f, 0f), p);
    }

    [Fact]
    public void Float_zero_point_tinygemm_by_hand()
    {
        // min = −1, max = 14: scale = 15 / 15 = 1, mid = (15 + 0 + 1) / 2 = 8, zero = −1 + 1·8 = 7.
        // min_val = 7 − 1·8 = −1, q = round(x + 1): 0.5 → round(1.5) = 2, 1.5 → round(2.5) = 2; deq = (q − 8)·1 + 7.
        float[] block = [-1f, 14f, 0.5f, 1.5f];
        QParams p = Affine.ChooseQParams(block, UInt4Float);
        Assert.Equal(new QParams(1f, 7f), p);
        int[] q = Quantize(block, p, UInt4Float);
        Assert.Equal([0, 15, 2, 2], q);
        Assert.Equal([-1f, 14f, 1f, 1f], Dequantize(q, p, UInt4Float));

        // min = 0, max = 7.5: scale = 0.5, zero = 0 + 0.5·8 = 4; 0.25 / 0.5 = 0.5 → 0, 0.75 / 0.5 = 1.5 → 2;
        // deq(2) = (2 − 8)·0.5 + 4 = 1. Zero itself is not preserved by this mapping, by design.
        block = [0f, 7.5f, 0.25f, 0.75f];
        p = Affine.ChooseQParams(block, UInt4Float);
        Assert.Equal(new QParams(0.5f, 4f), p);
        q = Quantize(block, p, UInt4Float);
        Assert.Equal([0, 15, 0, 2], q);
        Assert.Equal(1f, Affine.Dequantize(2, p, UInt4Float));
    }

    [Fact]
    public void Scales_round_to_the_scheme_dtype()
    {
        // [0, 1]: scale = 1/15 = 0.0666…; bf16 keeps 7 mantissa bits: 1.0666…·2⁻⁴ → 1 + 9/128 → 0.06689453125.
        // zero = 0 + 8·scale: in f32 0.53333336, rounded to bf16 1.0703125·2⁻¹ = 0.53515625.
        Assert.Equal(1f / 15f, Affine.ChooseQParams([0f, 1f], UInt4Float).Scale);
        QParams bf16 = Affine.ChooseQParams([0f, 1f], AffineScheme.UInt4Tinygemm);
        Assert.Equal(new QParams(0.06689453125f, 0.53515625f), bf16);
        // The same with a BF16 input: torch then computes the statistics in bf16 too; here the result agrees.
        Assert.Equal(bf16, Affine.ChooseQParams([0f, 1f], AffineScheme.UInt4Tinygemm, DType.BF16));
    }

    [Fact]
    public void Constant_blocks_use_eps()
    {
        // All zeros: amax = 0 → scale = eps (f32 eps for int8), every q = 0, deq = 0.
        QParams p = Affine.ChooseQParams([0f, 0f, 0f], Int8Sym);
        Assert.Equal(AffineScheme.F32Eps, p.Scale);
        Assert.Equal([0, 0, 0], Quantize([0f, 0f, 0f], p, Int8Sym));

        // tinygemm on [2, 2]: scale = 1e-6, zero = 2 + 8e-6; dequantization gives 2 back to within the scale.
        p = Affine.ChooseQParams([2f, 2f], UInt4Float);
        Assert.Equal(1e-6f, p.Scale);
        int[] q = Quantize([2f, 2f], p, UInt4Float);
        Assert.All(Dequantize(q, p, UInt4Float), v => Assert.Equal(2f, v, 1e-6f));
    }

    public static TheoryData<string> Schemes => new() { "int8-sym", "int4-sym", "uint4-asym", "uint4-float", "uint8-asym", "uint3-float" };

    private static AffineScheme Scheme(string name) => name switch
    {
        "int8-sym" => Int8Sym,
        "int4-sym" => Int4Sym,
        "uint4-asym" => UInt4Asym,
        "uint4-float" => UInt4Float,
        "uint8-asym" => new(MappingType.Asymmetric, QuantRange.UInt8, ZeroPointDomain.Int, AffineScheme.F32Eps, DType.F32),
        "uint3-float" => new(MappingType.Asymmetric, QuantRange.UInt(3), ZeroPointDomain.Float, 1e-6f, DType.F32, DType.F32),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>|x − deq(q(x))| ≤ scale/2 for every element of the block's range (F32 scales; the slack covers
    /// the f32 rounding of the scale and zero).</summary>
    [Theory]
    [MemberData(nameof(Schemes))]
    public void Round_trip_error_is_at_most_half_a_scale(string name)
    {
        var scheme = Scheme(name);
        var rng = new Random(42);
        for (int trial = 0; trial < 200; trial++)
        {
            float shift = trial % 3 == 0 ? 0f : (float)(rng.NextDouble() - 0.5);
            var block = new float[64];
            for (int i = 0; i < block.Length; i++)
                block[i] = shift + (float)Gaussian(rng);
            QParams p = Affine.ChooseQParams(block, scheme);
            float[] back = Dequantize(Quantize(block, p, scheme), p, scheme);
            for (int i = 0; i < block.Length; i++)
            {
                float bound = (p.Scale / 2) * (1 + 1e-4f) + (1e-6f * Math.Abs(block[i]));
                Assert.True(Math.Abs(block[i] - back[i]) <= bound, $"{name} trial {trial}: x = {block[i]}, deq = {back[i]}, scale = {p.Scale}");
            }
        }
    }

    /// <summary>Values on the quantization grid come back exactly: choose → quantize → dequantize is the identity
    /// when the block spans the whole grid and the scale is a power of two.</summary>
    [Theory]
    [MemberData(nameof(Schemes))]
    public void Grid_values_round_trip_exactly(string name)
    {
        var scheme = Scheme(name);
        var rng = new Random(3);
        int qmin = scheme.Range.QuantMin, qmax = scheme.Range.QuantMax;
        var p = scheme.Domain == ZeroPointDomain.Float
            ? new QParams(0.25f, -0.5f + (0.25f * scheme.Range.MidPoint))
            : new QParams(0.25f, scheme.Mapping == MappingType.Symmetric ? (qmax + qmin + 1) / 2 : 0);
        var q = new int[50];
        for (int i = 0; i < q.Length; i++)
            q[i] = rng.Next(qmin, qmax + 1);
        q[0] = qmin;
        q[1] = qmax;
        float[] x = Dequantize(q, p, scheme);
        Assert.Equal(q, Quantize(x, p, scheme));
        if (scheme.Domain == ZeroPointDomain.Float || scheme.Mapping == MappingType.Asymmetric)
        {
            // The block spans [qmin, qmax] exactly, so ChooseQParams finds the same parameters.
            QParams chosen = Affine.ChooseQParams(x, scheme);
            Assert.Equal(p.Scale, chosen.Scale);
            Assert.Equal(x, Dequantize(Quantize(x, chosen, scheme), chosen, scheme));
        }
    }

    [Fact]
    public void Tensor_level_functions_cut_blocks_by_granularity()
    {
        // [2, 4] per group of 2: four blocks, each chosen on its own.
        float[] x = [1f, -2f, 0.5f, 0.25f, 4f, 4f, -8f, 1f];
        var p = new QParams[4];
        Affine.ChooseQParams(x, 2, 4, Granularity.PerGroup(2), Int8Sym, DType.F32, p);
        Assert.Equal(2f / 127.5f, p[0].Scale);
        Assert.Equal(0.5f / 127.5f, p[1].Scale);
        Assert.Equal(8f / 127.5f, p[3].Scale);
        var q = new int[8];
        Affine.Quantize(x, 2, 4, Granularity.PerGroup(2), Int8Sym, DType.F32, p, q);
        var back = new float[8];
        Affine.Dequantize(q, 2, 4, Granularity.PerGroup(2), Int8Sym, p, back);
        for (int i = 0; i < 8; i++)
            Assert.True(Math.Abs(x[i] - back[i]) <= (p[i / 2].Scale / 2) + 1e-6f);

        Assert.Equal(8, Granularity.PerTensor.BlockLength(2, 4));
        Assert.Equal(4, Granularity.PerRow.BlockLength(2, 4));
        Assert.Equal(4, Granularity.PerToken.BlockLength(2, 4));
        Assert.Throws<ArgumentException>(() => Granularity.PerGroup(3).BlockLength(2, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => Granularity.PerGroup(0));
    }

    [Fact]
    public void Ranges_and_schemes_are_validated()
    {
        Assert.Equal(new QuantRange(0, 127), QuantRange.UInt(7));
        Assert.Equal(QuantRange.Int4, QuantRange.Int(4));
        Assert.Equal(8f, QuantRange.UInt4.MidPoint);
        Assert.Throws<ArgumentOutOfRangeException>(() => QuantRange.UInt(9));
        Assert.Throws<ArgumentException>(() => new QuantRange(3, 3));
        Assert.Throws<ArgumentException>(() => new AffineScheme(MappingType.Symmetric, QuantRange.Int8, ZeroPointDomain.Float, 1e-6f, DType.F32));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AffineScheme(MappingType.Asymmetric, QuantRange.Int8, ZeroPointDomain.Int, 0f, DType.F32));
        Assert.Throws<ArgumentException>(() => Affine.ChooseQParams([1f, float.NaN], Int8Sym));
    }

    internal static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
