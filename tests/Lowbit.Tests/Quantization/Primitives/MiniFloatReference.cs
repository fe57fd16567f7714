namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>
/// An independent float64 model of a sign/exponent/mantissa byte format, written from the specs (OCP FP8
/// v1.0; torchao's fpx convention: bias 2^(E−1) − 1, every code finite), not from Lowbit's code: values from
/// the bit fields with Math.Pow, and encoding by brute force over every code.
/// </summary>
internal sealed class MiniFloatReference(int e, int m, MiniFloatReference.Kind kind)
{
    public enum Kind
    {
        AllFinite,
        E4M3Fn,
        E5M2,
    }

    private double? _max;

    public int Bits => 1 + e + m;

    public int Count => 1 << Bits;

    public bool IsNaN(int code) => double.IsNaN(Value(code));

    public bool IsFinite(int code) => double.IsFinite(Value(code));

    /// <summary>The spec's value of a code.</summary>
    public double Value(int code)
    {
        int bias = (1 << (e - 1)) - 1;
        int mant = code & ((1 << m) - 1);
        int exp = (code >> m) & ((1 << e) - 1);
        double sign = ((code >> (e + m)) & 1) == 1 ? -1.0 : 1.0;
        bool expAllOnes = exp == (1 << e) - 1;
        if (kind == Kind.E4M3Fn && expAllOnes && mant == (1 << m) - 1)
            return double.NaN;
        if (kind == Kind.E5M2 && expAllOnes)
            return mant == 0 ? sign * double.PositiveInfinity : double.NaN;
        return exp == 0
            ? sign * (mant / Math.Pow(2, m)) * Math.Pow(2, 1 - bias)
            : sign * (1 + (mant / Math.Pow(2, m))) * Math.Pow(2, exp - bias);
    }

    /// <summary>The largest finite value.</summary>
    public double Max()
    {
        double max = 0;
        for (int c = 0; c < Count; c++)
        {
            if (IsFinite(c))
                max = Math.Max(max, Value(c));
        }

        return max;
    }

    /// <summary>The finite code nearest to x, ties to the code with an even mantissa (lowest bit 0), |x| ≥ max
    /// to ±max. x must not be NaN.</summary>
    public int Encode(float x)
    {
        double max = _max ??= Max();
        double target = Math.Clamp((double)x, -max, max);
        int best = -1;
        double bestDistance = double.PositiveInfinity;
        for (int c = 0; c < Count; c++)
        {
            if (!IsFinite(c) || (float.IsNegative(x) != (((c >> (e + m)) & 1) == 1)))
                continue; // the sign of the result is the sign of x, zeros included
            double distance = Math.Abs(Value(c) - target);
            if (distance < bestDistance || (distance == bestDistance && (c & 1) == 0))
            {
                best = c;
                bestDistance = distance;
            }
        }

        return best;
    }
}
