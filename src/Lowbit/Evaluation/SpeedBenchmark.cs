using System.Diagnostics;
using Lowbit.Generation;
using Lowbit.Models;

namespace Lowbit.Evaluation;

/// <summary>Prefill and decode speed in tokens per second.</summary>
public readonly record struct SpeedResult(double PrefillTokensPerSecond, double DecodeTokensPerSecond);

/// <summary>
/// llama-bench's pp and tg tests on a loaded model: prefill of <c>prompt</c> random tokens from position
/// 0 (in chunks of 64), and greedy decode of <c>gen</c> tokens from position 0; the best of reps, after
/// one warm-up chunk (JIT, page faults of the mapped weights).
/// </summary>
public static class SpeedBenchmark
{
    public static SpeedResult Measure(LanguageModel model, int prompt, int gen, int reps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(prompt, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(gen, 1);
        const int chunk = 64;
        using var state = new DecodeState(model.Config, model.Transformer.MaxSequenceLength, chunk, model.Backend);
        var random = new Random(1);
        int[] tokens = [.. Enumerable.Range(0, prompt).Select(_ => random.Next(model.Config.VocabSize))];
        model.Transformer.Forward(tokens.AsSpan(0, Math.Min(chunk, prompt)), 0, state);
        double prefill = 0, decode = 0;
        for (int r = 0; r < Math.Max(1, reps); r++)
        {
            var clock = Stopwatch.StartNew();
            for (int start = 0; start < prompt; start += chunk)
                model.Transformer.Forward(tokens.AsSpan(start, Math.Min(chunk, prompt - start)), start, state);
            prefill = Math.Max(prefill, prompt / clock.Elapsed.TotalSeconds);
            int token = 1;
            clock.Restart();
            for (int pos = 0; pos < gen; pos++)
            {
                model.Transformer.Forward([token], pos, state);
                token = Sampler.ArgMax(state.LogitsRow(0));
            }
            decode = Math.Max(decode, gen / clock.Elapsed.TotalSeconds);
        }
        return new SpeedResult(prefill, decode);
    }
}
