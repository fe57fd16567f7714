using Lowbit.Generation;

namespace Lowbit.Tests.Generation;

/// <summary>The device sampling algorithm's reference: the tokens it keeps and how often it picks each, against
/// probabilities computed the sorted way (softmax, top-k, smallest top-p prefix) in float64.</summary>
public class ThresholdSamplingTests
{
    [Fact]
    public void Keys_follow_the_order_of_floats()
    {
        float[] ordered = [float.NegativeInfinity, -3e38f, -2.5f, -1e-30f, -0f, 0f, 1e-30f, 1f, 2.5f, 3e38f, float.PositiveInfinity];
        for (int i = 1; i < ordered.Length; i++)
            Assert.True(ThresholdSampling.Key(ordered[i - 1]) <= ThresholdSampling.Key(ordered[i]), $"{ordered[i - 1]} vs {ordered[i]}");
        Assert.True(ThresholdSampling.Key(-2.5f) < ThresholdSampling.Key(-1e-30f));
        Assert.True(ThresholdSampling.Key(1f) < ThresholdSampling.Key(2.5f));
    }

    [Theory]
    [InlineData(0f, 0, 1f)]
    [InlineData(0.7f, 1, 1f)]
    public void Greedy_and_top_1_take_the_argmax(float temperature, int topK, float topP)
    {
        var rng = new Random(3);
        var logits = Enumerable.Range(0, 300).Select(_ => (float)rng.NextDouble()).ToArray();
        foreach (double u in new[] { 0.0, 0.37, 0.999 })
            Assert.Equal(Sampler.ArgMax(logits), ThresholdSampling.Sample(logits, temperature, topK, topP, u));
    }

    [Theory]
    [InlineData(1f, 0, 1f)]
    [InlineData(0.7f, 4, 1f)]
    [InlineData(0.7f, 0, 0.8f)]
    [InlineData(1.3f, 5, 0.6f)]
    public void Picks_each_token_with_its_probability(float temperature, int topK, float topP)
    {
        float[] logits = [0.3f, 2.1f, -1.0f, 1.7f, 0.9f, 2.4f, -0.2f, 1.1f];
        double[] expected = SortedWayProbabilities(logits, temperature, topK, topP);
        const int draws = 20000;
        var counts = new int[logits.Length];
        for (int j = 0; j < draws; j++)
            counts[ThresholdSampling.Sample(logits, temperature, topK, topP, (j + 0.5) / draws)]++;
        // A grid of uniforms inverts the cumulative mass exactly: each token's share is its probability ± 1/draws.
        for (int i = 0; i < logits.Length; i++)
            Assert.True(Math.Abs(counts[i] / (double)draws - expected[i]) <= 1.5 / draws, $"token {i}: {counts[i] / (double)draws} vs {expected[i]}");
    }

    /// <summary>softmax(l/T), the k most likely, then the smallest most-likely prefix reaching p, renormalised.</summary>
    private static double[] SortedWayProbabilities(float[] logits, float temperature, int topK, float topP)
    {
        double max = logits.Max();
        double[] p = [.. logits.Select(l => Math.Exp((l - max) / temperature))];
        int[] order = [.. Enumerable.Range(0, p.Length).OrderByDescending(i => p[i])];
        int keep = topK > 0 ? Math.Min(topK, p.Length) : p.Length;
        double total = order.Take(keep).Sum(i => p[i]), mass = 0;
        int prefix = 0;
        while (prefix < keep && mass < topP * total)
            mass += p[order[prefix++]];
        var result = new double[p.Length];
        foreach (int i in order.Take(prefix))
            result[i] = p[i] / mass;
        return result;
    }
}
