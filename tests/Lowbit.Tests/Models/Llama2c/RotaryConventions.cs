namespace Lowbit.Tests.Models.Llama2c;

/// <summary>The two RoPE conventions, written out plainly in double precision as each source defines them.</summary>
public static class RotaryConventions
{
    /// <summary>run.c: within each head of size D, rotate the pair (v[2i], v[2i+1]) by pos · theta^(-2i/D).</summary>
    public static void Interleaved(Span<double> v, int headSize, int pos, double theta = 10000)
    {
        for (int i = 0; i < v.Length; i += 2)
        {
            double angle = pos * Math.Pow(theta, -(double)(i % headSize) / headSize);
            var (c, s) = (Math.Cos(angle), Math.Sin(angle));
            (v[i], v[i + 1]) = (v[i] * c - v[i + 1] * s, v[i] * s + v[i + 1] * c);
        }
    }

    /// <summary>transformers' apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, which rotates the pair
    /// (x[j], x[j + D/2]) of each head by pos · theta^(-2j/D).</summary>
    public static void RotateHalf(Span<double> v, int headSize, int pos, double theta = 10000)
    {
        int half = headSize / 2;
        for (int h = 0; h < v.Length; h += headSize)
        {
            for (int j = 0; j < half; j++)
            {
                double angle = pos * Math.Pow(theta, -2.0 * j / headSize);
                var (c, s) = (Math.Cos(angle), Math.Sin(angle));
                var (a, b) = (v[h + j], v[h + j + half]);
                (v[h + j], v[h + j + half]) = (a * c - b * s, b * c + a * s);
            }
        }
    }
}
