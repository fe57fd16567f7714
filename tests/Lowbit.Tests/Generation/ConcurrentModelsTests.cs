using Lowbit.Generation;
using Lowbit.Models;

namespace Lowbit.Tests.Generation;

/// <summary>Each CPU backend owns its thread pool: models loaded with different thread counts run at the
/// same time, on different threads, without disturbing each other.</summary>
public sealed class ConcurrentModelsTests
{
    [Fact]
    public async Task Models_with_different_thread_counts_decode_side_by_side()
    {
        string dir = Path.Combine(AppContext.BaseDirectory, "bundled-model");
        int[] Run(int threads)
        {
            using var model = LanguageModel.Load(dir, new ModelLoadOptions { Threads = threads });
            using var generator = new Generator(model);
            int[] prompt = model.Tokenizer.Encode("Once upon a time", addBos: true);
            return [.. generator.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 48, StopAtEos = false })];
        }

        int[] expected = Run(1);
        var runs = new[] { 1, 2, 3, 2 }.Select(t => Task.Run(() => Run(t), TestContext.Current.CancellationToken)).ToArray();
        foreach (int[] tokens in await Task.WhenAll(runs))
            Assert.Equal(expected, tokens);
    }
}
