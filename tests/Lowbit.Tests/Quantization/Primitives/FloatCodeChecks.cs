using Lowbit.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>Checks every <see cref="FloatX"/> format must pass (FP8, FP6, FP4), called from the format tests.</summary>
internal static class FloatCodeChecks
{
    private static int SignBit(FloatX f) => 1 << (f.ExponentBits + f.MantissaBits);

    /// <summary>Encode(Decode(c)) = c for every finite code, both zeros included.</summary>
    public static void EncodeOfDecodeIsTheCode(FloatX format)
    {
        int finite = 0;
        for (int c = 0; c < format.CodeCount; c++)
        {
            float v = format.Decode((byte)c);
            if (!float.IsFinite(v))
                continue;
            finite++;
            Assert.True(format.Encode(v) == c, $"{format} 0x{c:X2} = {v} encodes as 0x{format.Encode(v):X2}");
        }

        Assert.True(finite >= format.CodeCount - 8, $"{format}: only {finite} finite codes");
    }

    /// <summary>Between each two neighbouring finite magnitudes k, k+1 (subnormal/normal boundary and 0 | min
    /// subnormal included): the exact midpoint goes to the even code, one float below it to k, one above to
    /// k+1; the same for negatives.</summary>
    public static void MidpointsRoundHalfToEven(FloatX format)
    {
        int sign = SignBit(format);
        for (int k = 0; k + 1 < sign && float.IsFinite(format.Decode((byte)(k + 1))); k++)
        {
            double lo = format.Decode((byte)k), hi = format.Decode((byte)(k + 1));
            double midExact = (lo + hi) / 2;
            float mid = (float)midExact;
            Assert.True(mid == midExact, $"{format}: midpoint {midExact} is not a float");
            int even = (k & 1) == 0 ? k : k + 1;
            foreach (int s in new[] { 0, sign })
            {
                float m = s == 0 ? mid : -mid;
                Assert.True(format.Encode(m) == (even | s), $"{format}: tie {m} between 0x{k | s:X2} and 0x{(k + 1) | s:X2} gave 0x{format.Encode(m):X2}");
                float below = s == 0 ? MathF.BitDecrement(mid) : -MathF.BitDecrement(mid);
                float above = s == 0 ? MathF.BitIncrement(mid) : -MathF.BitIncrement(mid);
                Assert.Equal(k | s, format.Encode(below));
                Assert.Equal((k + 1) | s, format.Encode(above));
            }
        }
    }

    /// <summary>Random floats over every binade of the format (and beyond both ends) against the brute-force
    /// nearest code of the reference.</summary>
    public static void EncodeMatchesBruteForceNearest(FloatX format, MiniFloatReference reference, int seed)
    {
        var rng = new Random(seed);
        int lowest = 1 - format.Bias - format.MantissaBits - 3;
        int highest = (int)Math.Ceiling(Math.Log2(format.MaxFinite)) + 2;
        for (int t = 0; t < 20000; t++)
        {
            float x = MathF.ScaleB(1f + rng.NextSingle(), rng.Next(lowest, highest + 1)) * (rng.Next(2) == 0 ? 1 : -1);
            Assert.True(format.Encode(x) == reference.Encode(x), $"{format}: Encode({x:R}) = 0x{format.Encode(x):X2}, brute force 0x{reference.Encode(x):X2}");
        }
    }

    /// <summary>The span forms equal the scalar ones, and check lengths and code range.</summary>
    public static void SpansMatchScalar(FloatX format)
    {
        byte[] codes = new byte[format.CodeCount];
        for (int c = 0; c < codes.Length; c++)
            codes[c] = (byte)c;
        var values = new float[codes.Length];
        format.Decode(codes, values);
        for (int c = 0; c < codes.Length; c++)
            Assert.Equal(BitConverter.SingleToUInt32Bits(format.DecodeTable[c]), BitConverter.SingleToUInt32Bits(values[c]));

        var rng = new Random(3);
        float[] x = new float[37];
        for (int i = 0; i < x.Length; i++)
            x[i] = (rng.NextSingle() - 0.5f) * 2.2f * format.MaxFinite;
        var encoded = new byte[x.Length];
        format.Encode(x, encoded);
        for (int i = 0; i < x.Length; i++)
            Assert.Equal(format.Encode(x[i]), encoded[i]);

        Assert.Throws<ArgumentException>(() => format.Encode(x, new byte[x.Length - 1]));
        Assert.Throws<ArgumentException>(() => format.Decode(encoded, new float[x.Length + 1]));
        if (format.CodeCount < 256)
        {
            byte[] bad = [0, 1, (byte)format.CodeCount, 2];
            var e = Assert.Throws<ArgumentException>(() => format.Decode(bad, new float[4]));
            Assert.Contains($"codes[2] = {format.CodeCount}", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => format.Decode((byte)format.CodeCount));
        }
    }
}
