using Lowbit.Generation;

namespace Lowbit.Tests.Generation;

public sealed class SamplerTests
{
    private static readonly float[] Logits = [0.5f, 2.0f, -1.0f, 1.5f, 0.0f, 1.9f];

    [Fact]
    public void Greedy_is_argmax_and_first_index_wins_ties()
    {
        Assert.Equal(1, new Sampler(6, SamplingOptions.Greedy).Sample(Logits));
        Assert.Equal(2, Sampler.ArgMax([0f, 1f, 3f, 3f]));
    }

    [Fact]
    public void Same_seed_same_tokens_other_seed_other_tokens()
    {
        int[] Draw(ulong seed)
        {
            var s = new Sampler(6, new SamplingOptions(temperature: 1f, seed: seed));
            return Enumerable.Range(0, 64).Select(_ => s.Sample(Logits)).ToArray();
        }
        Assert.Equal(Draw(42), Draw(42));
        Assert.NotEqual(Draw(42), Draw(43));
    }

    [Fact]
    public void Frequencies_follow_the_softmax_at_temperature()
    {
        const int draws = 200_000;
        const float temperature = 0.7f;
        var sampler = new Sampler(6, new SamplingOptions(temperature, seed: 7));
        var counts = new int[6];
        for (int i = 0; i < draws; i++)
            counts[sampler.Sample(Logits)]++;
        double[] p = Logits.Select(l => Math.Exp(l / temperature)).ToArray();
        double z = p.Sum();
        for (int i = 0; i < 6; i++)
        {
            double expected = p[i] / z;
            double sigma = Math.Sqrt(expected * (1 - expected) / draws);
            Assert.InRange(counts[i] / (double)draws, expected - 5 * sigma, expected + 5 * sigma);
        }
    }

    [Fact]
    public void Top_k_keeps_only_the_k_most_likely()
    {
        var sampler = new Sampler(6, new SamplingOptions(temperature: 5f, topK: 2, seed: 1));
        var seen = Enumerable.Range(0, 2000).Select(_ => sampler.Sample(Logits)).ToHashSet();
        Assert.Equal(new HashSet<int> { 1, 5 }, seen);
    }

    [Fact]
    public void Top_p_keeps_the_smallest_set_reaching_p()
    {
        // Probabilities at T=1: token 1 ≈ 0.343, 5 ≈ 0.310, 3 ≈ 0.208, 0 ≈ 0.076...; p = 0.7 needs {1, 5, 3}.
        var sampler = new Sampler(6, new SamplingOptions(temperature: 1f, topP: 0.7f, seed: 3));
        var seen = Enumerable.Range(0, 4000).Select(_ => sampler.Sample(Logits)).ToHashSet();
        Assert.Equal(new HashSet<int> { 1, 5, 3 }, seen);
    }

    [Theory]
    [InlineData(-0.1f, 0, 1f)]
    [InlineData(float.NaN, 0, 1f)]
    [InlineData(1f, -1, 1f)]
    [InlineData(1f, 0, 0f)]
    [InlineData(1f, 0, 1.5f)]
    public void Invalid_options_are_rejected(float temperature, int topK, float topP) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new SamplingOptions(temperature, topK, topP));
}
