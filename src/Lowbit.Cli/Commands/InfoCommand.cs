using System.CommandLine;
using Lowbit.Models;
using Lowbit.Models.IO;

namespace Lowbit.Cli.Commands;

/// <summary><c>lowbit info</c>: what a model directory holds.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var command = new Command("info", "Show a model's architecture, size, dtypes and tokenizer.") { model };
        command.SetAction(r => CommonOptions.Run(() =>
        {
            // Info reads the header and sizes only: no copy into huge pages.
            using var lm = LanguageModel.Load(r.GetValue(model) ?? CommonOptions.BundledModel, new ModelLoadOptions { WeightMemory = WeightMemory.Mapped });
            var c = lm.Config;
            var formats = lm.Weights.Linears().GroupBy(l => l.Weight.FormatName)
                .Select(g => $"{g.Key} ×{g.Count()}");
            long linearBytes = lm.Weights.Linears().Sum(l => l.Weight.ByteLength);
            Console.WriteLine($"model          {lm.Directory}");
            Console.WriteLine($"architecture   {c.Architecture}");
            Console.WriteLine($"parameters     {lm.ParameterCount:N0}");
            Console.WriteLine($"layers         {c.NumLayers}, hidden {c.HiddenSize}, ffn {c.IntermediateSize}");
            Console.WriteLine($"attention      {c.NumHeads} heads, {c.NumKvHeads} kv heads, head dim {c.HeadDim}{(c.AttentionBias ? ", q/k/v bias" : "")}");
            Console.WriteLine($"rope           theta {c.RopeTheta}{(c.RopeScaling is { } s ? $", scaling {s.Type} ×{s.Factor}" : "")}");
            Console.WriteLine($"vocabulary     {c.VocabSize}{(c.TieWordEmbeddings ? ", tied embeddings" : "")}");
            Console.WriteLine($"context        {c.MaxPositionEmbeddings} positions");
            // Keys and values of every layer: the cache lowbit allocates for a sequence (--kv-cache picks the type).
            long perPosition = 2L * c.NumLayers * c.KvDim;
            int cached = Math.Min(c.MaxPositionEmbeddings, ModelLoadOptions.DefaultMaxSequenceLength);
            Console.WriteLine($"kv cache       {CommonOptions.FormatBytes(perPosition * 4)} a position in f32, {CommonOptions.FormatBytes(perPosition * 2)} in bf16; " +
                $"{cached} positions (the default): {CommonOptions.FormatBytes(perPosition * 4 * cached)} / {CommonOptions.FormatBytes(perPosition * 2 * cached)}");
            Console.WriteLine($"weights        {string.Join(", ", formats)}; linear layers {CommonOptions.FormatBytes(linearBytes)}, embedding {lm.Weights.Embedding.DType} {CommonOptions.FormatBytes(lm.Weights.Embedding.ByteLength)}");
            Console.WriteLine($"tokenizer      {Path.GetFileName(lm.Tokenizer.SourcePath)} ({lm.Tokenizer.VocabSize} tokens), BOS {lm.Tokenizer.BosId?.ToString() ?? "none"}, EOS {string.Join(",", lm.Tokenizer.EosIds)}");
            Console.WriteLine($"backend        {lm.Backend.Name}");
            return 0;
        }));
        return command;
    }
}
