using System.CommandLine;
using System.Diagnostics;
using Lowbit.Generation;
using Lowbit.Models;

namespace Lowbit.Cli.Commands;

/// <summary><c>lowbit generate [PROMPT]</c>: streams a continuation, then one summary line.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var prompt = new Argument<string>("prompt") { Description = "Text to continue (default: empty, the model starts from BOS).", DefaultValueFactory = _ => "" };
        var model = CommonOptions.Model();
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 256 };
        var sampling = CommonOptions.Sampling();
        var threads = CommonOptions.Threads();
        var quant = CommonOptions.Quant();
        var device = CommonOptions.Device();
        var kvCache = CommonOptions.KvCache();
        var command = new Command("generate", "Generate text from a prompt, streaming it as it comes.")
        {
            prompt, model, maxTokens, threads, quant, device, kvCache,
        };
        foreach (var option in sampling.All)
            command.Options.Add(option);
        command.SetAction(r => CommonOptions.Run(() =>
        {
            if (r.GetValue(maxTokens) < 1)
                throw new ArgumentException($"--max-tokens must be at least 1; got {r.GetValue(maxTokens)}.");
            using var lm = LanguageModel.Load(r.GetValue(model) ?? CommonOptions.BundledModel,
                CommonOptions.LoadOptions(r.GetValue(threads), quant: r.GetValue(quant), device: r.GetValue(device), kvCache: r.GetValue(kvCache)));
            CommonOptions.PrintQuantization(lm);
            using var generator = new Generator(lm);
            var options = new GenerationOptions { MaxTokens = r.GetValue(maxTokens), Sampling = sampling.Parse(r) };
            string text = r.GetValue(prompt) ?? "";
            Console.Write(text);
            foreach (string piece in generator.GenerateAsync(text, options).ToBlockingEnumerable())
                Console.Write(piece);
            Console.WriteLine();
            var s = generator.LastStats!;
            long peak = Process.GetCurrentProcess().PeakWorkingSet64;
            Console.Error.WriteLine(
                $"prompt {s.PromptTokens} tokens, prefill {s.PrefillTokensPerSecond:F1} tok/s | generated {s.GeneratedTokens} tokens, " +
                $"decode {s.DecodeTokensPerSecond:F1} tok/s | {lm.Backend.Name} | peak memory {CommonOptions.FormatBytes(peak)}");
            return 0;
        }));
        return command;
    }
}
