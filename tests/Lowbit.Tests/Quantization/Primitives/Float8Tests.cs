using Lowbit.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>Float8E4M3 and Float8E5M2 against <see cref="MiniFloatReference"/> (the OCP spec in float64): all
/// 256 decodes, encode∘decode, every midpoint between neighbouring codes, saturation, subnormals, NaN.</summary>
public class Float8Tests
{
    public static TheoryData<string> Formats => new() { "e4m3", "e5m2" };

    private static (FloatX Format, MiniFloatReference Reference) Get(string name) => name switch
    {
        "e4m3" => (Float8E4M3.Format, new MiniFloatReference(4, 3, MiniFloatReference.Kind.E4M3Fn)),
        _ => (Float8E5M2.Format, new MiniFloatReference(5, 2, MiniFloatReference.Kind.E5M2)),
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void EveryCodeDecodesToTheSpecValue(string name)
    {
        var (format, reference) = Get(name);
        Assert.Equal(256, format.DecodeTable.Length);
        for (int c = 0; c < 256; c++)
        {
            double expected = reference.Value(c);
            float actual = format.Decode((byte)c);
            if (double.IsNaN(expected))
                Assert.True(float.IsNaN(actual), $"{name} 0x{c:X2}: {actual}, expected NaN");
            else
                Assert.True(BitConverter.SingleToUInt32Bits((float)expected) == BitConverter.SingleToUInt32Bits(actual), $"{name} 0x{c:X2}: {actual}, expected {expected}");
            Assert.Equal(BitConverter.SingleToUInt32Bits(actual), BitConverter.SingleToUInt32Bits(format.DecodeTable[c]));
        }
    }

    [Fact]
    public void SpecConstants()
    {
        Assert.Equal(448f, Float8E4M3.Decode(0x7E));
        Assert.Equal(-448f, Float8E4M3.Decode(0xFE));
        Assert.Equal(MathF.ScaleB(1, -9), Float8E4M3.Decode(0x01));
        Assert.Equal(MathF.ScaleB(1, -6), Float8E4M3.Decode(0x08));
        Assert.True(float.IsNaN(Float8E4M3.Decode(0x7F)) && float.IsNaN(Float8E4M3.Decode(0xFF)));
        Assert.Equal(448f, Float8E4M3.MaxFinite);
        Assert.Equal(57344f, Float8E5M2.Decode(0x7B));
        Assert.Equal(MathF.ScaleB(1, -16), Float8E5M2.Decode(0x01));
        Assert.Equal(MathF.ScaleB(1, -14), Float8E5M2.Decode(0x04));
        Assert.Equal(float.PositiveInfinity, Float8E5M2.Decode(Float8E5M2.PositiveInfinity));
        Assert.Equal(float.NegativeInfinity, Float8E5M2.Decode(0xFC));
        Assert.True(float.IsNaN(Float8E5M2.Decode(0x7D)) && float.IsNaN(Float8E5M2.Decode(0xFE)));
        Assert.Equal(57344f, Float8E5M2.MaxFinite);
        Assert.Equal("e4m3fn", Float8E4M3.Format.ToString());
        Assert.Equal("e5m2", Float8E5M2.Format.ToString());
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void EncodeOfDecodeIsTheCode(string name) => FloatCodeChecks.EncodeOfDecodeIsTheCode(Get(name).Format);

    [Theory]
    [MemberData(nameof(Formats))]
    public void MidpointsRoundHalfToEven(string name) => FloatCodeChecks.MidpointsRoundHalfToEven(Get(name).Format);

    [Theory]
    [MemberData(nameof(Formats))]
    public void EncodeMatchesBruteForceNearest(string name)
    {
        var (format, reference) = Get(name);
        FloatCodeChecks.EncodeMatchesBruteForceNearest(format, reference, seed: name.Length);
    }

    [Fact]
    public void SaturatesToMaxFinite()
    {
        foreach (float x in new[] { 448f, 449f, 464f, 465f, 480f, 1e30f, float.MaxValue, float.PositiveInfinity })
        {
            Assert.Equal(0x7E, Float8E4M3.Encode(x));
            Assert.Equal(0xFE, Float8E4M3.Encode(-x));
        }

        Assert.Equal(0x7D, Float8E4M3.Encode(431f)); // 416 (0x7D) | 448 (0x7E): midpoint 432
        Assert.Equal(0x7E, Float8E4M3.Encode(432f)); // the tie goes to the even 0x7E
        foreach (float x in new[] { 57344f, 60000f, 61440f, 65536f, 1e30f, float.PositiveInfinity })
        {
            Assert.Equal(0x7B, Float8E5M2.Encode(x));
            Assert.Equal(0xFB, Float8E5M2.Encode(-x));
        }
    }

    [Fact]
    public void SubnormalsRoundExactly()
    {
        float sub = MathF.ScaleB(1, -9); // E4M3 code 1
        Assert.Equal(0x00, Float8E4M3.Encode(sub / 2)); // tie 0 | 1: even is 0
        Assert.Equal(0x01, Float8E4M3.Encode(MathF.BitIncrement(sub / 2)));
        Assert.Equal(0x02, Float8E4M3.Encode(sub * 1.5f)); // tie 1 | 2: even is 2
        Assert.Equal(0x07, Float8E4M3.Encode(sub * 7f));
        Assert.Equal(0x08, Float8E4M3.Encode(sub * 7.5f)); // tie between the largest subnormal and 2^−6: 0x08 even
        Assert.Equal(0x80, Float8E4M3.Encode(-sub / 2)); // −0: the sign survives rounding to zero
        Assert.Equal(0x00, Float8E4M3.Encode(float.Epsilon));
        Assert.Equal(0x80, Float8E4M3.Encode(-float.Epsilon));
        Assert.Equal(0x00, Float8E4M3.Encode(0f));
        Assert.Equal(0x80, Float8E4M3.Encode(-0f));
        float sub5 = MathF.ScaleB(1, -16); // E5M2 code 1
        Assert.Equal(0x01, Float8E5M2.Encode(sub5));
        Assert.Equal(0x02, Float8E5M2.Encode(sub5 * 2.5f)); // tie 2 | 3: even is 2
        Assert.Equal(0x04, Float8E5M2.Encode(sub5 * 3.5f)); // tie 3 | 4 (= 2^−14, normal): even is 4
        Assert.Equal(0x00, Float8E5M2.Encode(sub5 / 2));
    }

    [Fact]
    public void NaNEncodesAsNaN()
    {
        float negativeNaN = BitConverter.UInt32BitsToSingle(0xFFC0_0000);
        float positiveNaN = BitConverter.UInt32BitsToSingle(0x7FC0_0000);
        Assert.Equal(0x7F, Float8E4M3.Encode(positiveNaN));
        Assert.Equal(0xFF, Float8E4M3.Encode(negativeNaN));
        Assert.Equal(0x7F, Float8E5M2.Encode(positiveNaN));
        Assert.Equal(0xFF, Float8E5M2.Encode(negativeNaN));
        Assert.Equal(0x7F, Float8E4M3.Encode(BitConverter.UInt32BitsToSingle(0x7F80_0001))); // signalling NaN too
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void SpansMatchScalarAndCheckLengths(string name) => FloatCodeChecks.SpansMatchScalar(Get(name).Format);
}
