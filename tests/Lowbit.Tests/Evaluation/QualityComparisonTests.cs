using Lowbit.Evaluation;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Quantization.Configs;

namespace Lowbit.Tests.Evaluation;

public sealed class QualityComparisonTests
{
    private static LanguageModel Bundled(IQuantConfig? quantization = null) =>
        LanguageModel.Load(Path.Combine(AppContext.BaseDirectory, "bundled-model"), new ModelLoadOptions { Threads = 1, Quantization = quantization });

    private static int[] Text(LanguageModel model) =>
        model.Tokenizer.Encode(string.Join("\n", File.ReadLines(Fixtures.Get("text", "tinystories-valid.txt")).Take(12)), addBos: true);

    [Fact]
    public void A_model_against_itself_diverges_nowhere()
    {
        using var a = Bundled();
        using var b = Bundled();
        var r = QualityComparison.Evaluate(a, b, Text(a), 64, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(r.Reference.Perplexity, r.Candidate.Perplexity);
        Assert.InRange(r.MeanKlDivergence, -1e-12, 1e-12);
        Assert.Equal(1.0, r.SameTopTokenFraction);
    }

    [Fact]
    public void Int8wo_divergence_matches_a_direct_computation()
    {
        using var reference = Bundled();
        using var candidate = Bundled(new Int8WeightOnlyConfig());
        int[] tokens = Text(reference);
        const int ctx = 64;
        var r = QualityComparison.Evaluate(reference, candidate, tokens, ctx, cancellationToken: TestContext.Current.CancellationToken);

        // Directly: both models token by token over the same windows, KL(P_ref ‖ P_q) in float64.
        double kld = 0;
        int count = 0, same = 0;
        using var sp = new DecodeState(reference.Config, ctx, 1);
        using var sq = new DecodeState(candidate.Config, ctx, 1);
        for (int c = 0; c < tokens.Length / ctx; c++)
        {
            for (int pos = 0; pos < ctx - 1; pos++)
            {
                int token = pos == 0 ? reference.Tokenizer.BosId!.Value : tokens[c * ctx + pos];
                reference.Transformer.Forward([token], pos, sp);
                candidate.Transformer.Forward([token], pos, sq);
                if (pos < ctx / 2)
                    continue;
                double[] p = Softmax(sp.Logits.Row<float>(0)), q = Softmax(sq.Logits.Row<float>(0));
                kld += p.Select((pj, j) => pj * (Math.Log(pj) - Math.Log(q[j]))).Sum();
                same += Array.IndexOf(p, p.Max()) == Array.IndexOf(q, q.Max()) ? 1 : 0;
                count++;
            }
        }
        Assert.Equal(count, r.Candidate.ScoredTokens);
        Assert.Equal(kld / count, r.MeanKlDivergence, 1e-3 * kld / count);
        Assert.Equal(same / (double)count, r.SameTopTokenFraction, 1e-9);
        Assert.True(r.MeanKlDivergence > 0);
    }

    private static double[] Softmax(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (float v in logits)
            max = Math.Max(max, v);
        var e = new double[logits.Length];
        for (int i = 0; i < e.Length; i++)
            e[i] = Math.Exp(logits[i] - max);
        double z = e.Sum();
        return [.. e.Select(v => v / z)];
    }
}
