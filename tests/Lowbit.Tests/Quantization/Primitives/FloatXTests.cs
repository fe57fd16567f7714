using Lowbit.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>FloatX with torchao's fpx convention (all codes finite, bias 2^(E−1) − 1) over every code of FP6
/// E3M2, FP6 E2M3, FP4 E2M1 and a few other widths, against <see cref="MiniFloatReference"/>; plus packing.</summary>
public class FloatXTests
{
    public static TheoryData<int, int> Formats => new() { { 3, 2 }, { 2, 3 }, { 2, 1 }, { 1, 2 }, { 3, 0 }, { 4, 3 }, { 5, 2 }, { 2, 2 } };

    [Theory]
    [MemberData(nameof(Formats))]
    public void EveryCodeDecodesToTheSpecValue(int e, int m)
    {
        var format = new FloatX(e, m);
        var reference = new MiniFloatReference(e, m, MiniFloatReference.Kind.AllFinite);
        Assert.Equal(reference.Count, format.DecodeTable.Length);
        for (int c = 0; c < reference.Count; c++)
        {
            float expected = (float)reference.Value(c);
            Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(format.DecodeTable[c]), $"{format} 0x{c:X2}: {format.DecodeTable[c]}, expected {expected}");
        }

        Assert.Equal(reference.Max(), format.MaxFinite);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void EncodeOfDecodeIsTheCode(int e, int m) => FloatCodeChecks.EncodeOfDecodeIsTheCode(new FloatX(e, m));

    [Theory]
    [MemberData(nameof(Formats))]
    public void MidpointsRoundHalfToEven(int e, int m) => FloatCodeChecks.MidpointsRoundHalfToEven(new FloatX(e, m));

    [Theory]
    [MemberData(nameof(Formats))]
    public void EncodeMatchesBruteForceNearest(int e, int m) =>
        FloatCodeChecks.EncodeMatchesBruteForceNearest(new FloatX(e, m), new MiniFloatReference(e, m, MiniFloatReference.Kind.AllFinite), seed: (10 * e) + m);

    [Theory]
    [MemberData(nameof(Formats))]
    public void SpansMatchScalarAndCheckLengths(int e, int m) => FloatCodeChecks.SpansMatchScalar(new FloatX(e, m));

    [Fact]
    public void TorchaoFpxConstants()
    {
        Assert.Equal(28f, FloatX.Fp6E3M2.MaxFinite); // 2^(7−3)·1.75
        Assert.Equal(0.0625f, FloatX.Fp6E3M2.Decode(0x01)); // 2^(1−3−2)
        Assert.Equal(7.5f, FloatX.Fp6E2M3.MaxFinite); // 2^(3−1)·1.875
        Assert.Equal(0.125f, FloatX.Fp6E2M3.Decode(0x01));
        Assert.Equal(6f, FloatX.Fp4E2M1.MaxFinite);
        Assert.Equal([0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f], FloatX.Fp4E2M1.DecodeTable[..8].ToArray());
        Assert.Equal(-6f, FloatX.Fp4E2M1.Decode(0xF));
        Assert.Equal(3, FloatX.Fp6E3M2.Bias);
        Assert.Equal(64, FloatX.Fp6E3M2.CodeCount);
        Assert.Equal("fp6e3m2", FloatX.Fp6E3M2.ToString());
        Assert.Equal(0x1F, FloatX.Fp6E3M2.Encode(float.PositiveInfinity)); // saturates, sign kept
        Assert.Equal(0x3F, FloatX.Fp6E3M2.Encode(-1e9f));
        Assert.Equal(0x20, FloatX.Fp6E3M2.Encode(-0f));
        Assert.Equal(0x6, FloatX.Fp4E2M1.Encode(5f)); // tie 4 (0x6) | 6 (0x7): the even code
        Assert.Equal(0x7, FloatX.Fp4E2M1.Encode(5.0001f));
    }

    [Fact]
    public void NaNHasNoCode()
    {
        var e = Assert.Throws<ArgumentException>(() => FloatX.Fp6E3M2.Encode(float.NaN));
        Assert.Contains("no NaN code", e.Message);
        Assert.Throws<ArgumentException>(() => FloatX.Fp4E2M1.Encode([1f, float.NaN], new byte[2]));
    }

    [Fact]
    public void RejectsFormatsThatDoNotFitAByte()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FloatX(0, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FloatX(4, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FloatX(3, -1));
    }

    [Fact]
    public void Fp6PacksFourCodesInThreeBytes()
    {
        FloatX f = FloatX.Fp6E3M2;
        byte[] codes = [f.Encode(1f), f.Encode(-28f), f.Encode(0.0625f), f.Encode(3f)]; // 0x0C, 0x3F, 0x01, 0x12
        Assert.Equal([0x0C, 0x3F, 0x01, 0x12], codes);
        Assert.Equal(3, f.PackedLength(4));
        var packed = new byte[3];
        f.Pack(codes, packed);
        // byte0 = c0 | c1<<6 = 0x0C | 0xC0; byte1 = c1>>2 | c2<<4 = 0x0F | 0x10; byte2 = c2>>4 | c3<<2 = 0x48
        Assert.Equal([0xCC, 0x1F, 0x48], packed);
        var back = new byte[4];
        f.Unpack(packed, back);
        Assert.Equal(codes, back);
        Assert.Throws<ArgumentException>(() => f.Pack([0x40], new byte[1])); // 7 bits
    }

    [Fact]
    public void Fp4PacksCode2kInTheLowNibble()
    {
        var packed = new byte[2];
        FloatX.Fp4E2M1.Pack([0x1, 0xF, 0x7], packed);
        Assert.Equal([0xF1, 0x07], packed);
    }
}
