using Lowbit.Evaluation;
using Lowbit.Generation;
using Lowbit.Models;

namespace Lowbit.Tests.Evaluation;

public sealed class PerplexityTests
{
    private static LanguageModel Bundled() =>
        LanguageModel.Load(Path.Combine(AppContext.BaseDirectory, "bundled-model"), new ModelLoadOptions { Threads = 1 });

    [Theory]
    [InlineData(16)]
    [InlineData(100)]  // windows that are not a multiple of the 64-token prefill batch
    [InlineData(130)]
    public void Matches_a_token_by_token_reference(int ctx)
    {
        using var model = Bundled();
        string text = string.Join("\n", File.ReadLines(Fixtures.Get("text", "tinystories-valid.txt")).Take(15));
        int[] tokens = model.Tokenizer.Encode(text, addBos: true);
        var result = Perplexity.Evaluate(model, tokens, ctx, cancellationToken: TestContext.Current.CancellationToken);

        // Reference: each window fed one token at a time, every NLL summed in float64.
        int chunks = tokens.Length / ctx;
        double nll = 0, nll2 = 0;
        int count = 0;
        using var state = new DecodeState(model.Config, ctx, 1);
        for (int c = 0; c < chunks; c++)
        {
            for (int pos = 0; pos < ctx - 1; pos++)
            {
                int token = pos == 0 ? model.Tokenizer.BosId!.Value : tokens[c * ctx + pos];
                model.Transformer.Forward([token], pos, state);
                if (pos < ctx / 2)
                    continue;
                var logits = state.Logits.Row<float>(0);
                double max = logits.ToArray().Max();
                double lse = max + Math.Log(logits.ToArray().Sum(l => Math.Exp(l - max)));
                double loss = lse - logits[tokens[c * ctx + pos + 1]];
                nll += loss;
                nll2 += loss * loss;
                count++;
            }
        }
        double mean = nll / count;
        Assert.Equal(chunks, result.Chunks);
        Assert.Equal(count, result.ScoredTokens);
        Assert.Equal(Math.Exp(mean), result.Perplexity, 1e-4 * result.Perplexity);
        Assert.Equal(Math.Exp(mean) * Math.Sqrt((nll2 / count - mean * mean) / (count - 1)), result.StandardError, 1e-4 * result.StandardError);
    }

    [Fact]
    public void Too_short_a_text_is_refused_with_the_counts()
    {
        using var model = Bundled();
        var e = Assert.Throws<ArgumentException>(() => Perplexity.Evaluate(model, new int[100], 64, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("100 tokens", e.Message);
        Assert.Contains("128", e.Message);
    }
}
