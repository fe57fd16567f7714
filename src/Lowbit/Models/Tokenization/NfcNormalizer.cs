using System.Text;
using Microsoft.ML.Tokenizers;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// tokenizer.json's "NFC" normalizer (Qwen2). It composes only where .NET has ICU: with
/// InvariantGlobalization (as Lowbit's build sets) <see cref="string.Normalize(NormalizationForm)"/> returns
/// text that is not already NFC unchanged, so decomposed input ("e" + U+0301) may encode differently from
/// Hugging Face. Most text is NFC already.
/// </summary>
internal sealed class NfcNormalizer : Normalizer
{
    public override string Normalize(string original) => original.Normalize(NormalizationForm.FormC);

    public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
}
