using System.CommandLine;
using Lowbit.Evaluation;
using Lowbit.Models;
using Spectre.Console;

namespace Lowbit.Cli.Commands;

/// <summary><c>lowbit eval</c>: perplexity on a text file, comparable with llama.cpp's llama-perplexity.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var text = new Option<FileInfo>("--text") { Description = "UTF-8 text file to score.", Required = true };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Window length in tokens (llama-perplexity's -c).", DefaultValueFactory = _ => 512 };
        var threads = CommonOptions.Threads();
        var quant = CommonOptions.Quant();
        var device = CommonOptions.Device();
        var kvCache = CommonOptions.KvCache();
        var command = new Command("eval", "Perplexity of a model on a text, computed as llama.cpp's llama-perplexity does.") { model, text, ctx, threads, quant, device, kvCache };
        command.SetAction(r => CommonOptions.Run(() =>
        {
            var file = r.GetValue(text)!;
            if (!file.Exists)
                throw new FileNotFoundException($"Text file {file.FullName} does not exist.");
            int contextLength = r.GetValue(ctx);
            if (contextLength < 4)
                throw new ArgumentException($"--ctx must be at least 4; got {contextLength}.");
            using var lm = LanguageModel.Load(r.GetValue(model) ?? CommonOptions.BundledModel,
                CommonOptions.LoadOptions(r.GetValue(threads), contextLength, r.GetValue(quant), r.GetValue(device), r.GetValue(kvCache)));
            CommonOptions.PrintQuantization(lm);
            int[] tokens = Perplexity.TokenizeFile(lm, file.FullName);
            int chunks = Perplexity.ChunkCount(tokens.Length, contextLength);
            if (chunks == 0)
                throw new ArgumentException($"{file.Name} has {tokens.Length} tokens; context {contextLength} needs at least {2 * contextLength}.");
            Console.WriteLine($"{file.Name}: {tokens.Length} tokens, {chunks} windows of {contextLength}");
            PerplexityResult? result = null;
            if (AnsiConsole.Profile.Capabilities.Interactive)
            {
                AnsiConsole.Progress().AutoClear(true).Start(progress =>
                {
                    var task = progress.AddTask("perplexity", maxValue: chunks);
                    result = Perplexity.Evaluate(lm, tokens, contextLength, new SyncProgress<int>(done => task.Value = done));
                    task.Value = chunks;
                });
            }
            else
            {
                // Redirected output (logs, CI) gets no bar: a line per tenth of the work instead.
                result = Perplexity.Evaluate(lm, tokens, contextLength, new SyncProgress<int>(done =>
                {
                    if (done * 10 / chunks != (done - 1) * 10 / chunks)
                        Console.Error.WriteLine($"perplexity: {done}/{chunks} windows");
                }));
            }
            Console.WriteLine($"PPL = {result!.Perplexity:F4} +/- {result.StandardError:F5} ({result.ScoredTokens} tokens scored)");
            return 0;
        }));
        return command;
    }
}

/// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool, so its
/// reports can arrive after the result is printed).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
